import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import knexFactory, { type Knex } from "knex";
import { DependencyUnavailableError } from "@intake/domain";
import { MIGRATIONS_TABLE } from "./migrator.ts";
import { GroupCommit, type RawSqlite } from "./sqlite-group-commit.ts";
import { refuseNested, runUnit, Statement, type Atomic } from "./unit-of-work.ts";

export { Statement, UnitOfWorkError, type Atomic } from "./unit-of-work.ts";
export { migrate, pendingMigrations, prepareSchema, SchemaBehindError, MIGRATION_LOCK_KEY } from "./migrator.ts";

/** poolMax: the PostgreSQL pool's size per process (DATABASE_POOL_MAX; default 10). */
export type DatabaseSettings = { client: "pg"; url: string; poolMax?: number } | { client: "sqlite"; filename: string };

export const DEFAULT_PG_POOL_MAX = 10;

export type Database = Knex;

export function openDatabase(settings: DatabaseSettings): Knex {
  if (settings.client === "pg") {
    return knexFactory({ client: "pg", connection: settings.url, pool: { min: 0, max: settings.poolMax ?? DEFAULT_PG_POOL_MAX } });
  }
  if (settings.filename !== ":memory:") mkdirSync(dirname(settings.filename), { recursive: true });
  let connection: RawSqlite | undefined;
  const db = knexFactory({
    client: "better-sqlite3",
    connection: { filename: settings.filename },
    useNullAsDefault: true,
    pool: {
      // One connection: the group commit holds it for its transaction (sqlite-group-commit.ts).
      min: 1,
      max: 1,
      afterCreate: (conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) => {
        // WAL lets the API read while a worker writes; busy_timeout makes concurrent
        // processes (API + workers on one SQLite file) wait for the lock instead of failing.
        conn.pragma("journal_mode = WAL");
        // In WAL mode NORMAL syncs at checkpoints, not on every commit: a commit survives a
        // process crash, only an OS crash or power loss can take the last ones back (SQLite
        // docs, "PRAGMA synchronous"). Fine for the embedded single-machine database; the
        // production database is PostgreSQL.
        conn.pragma("synchronous = NORMAL");
        conn.pragma("busy_timeout = 5000");
        conn.pragma("foreign_keys = ON");
        connection = conn;
        done(null, conn);
      },
    },
  });
  groupCommits.set(db, new GroupCommit(db, () => connection, MIGRATIONS_TABLE));
  return db;
}

/**
 * Runs `work` atomically: all of its writes or none. On PostgreSQL a knex transaction. On
 * SQLite the unit joins a group commit (sqlite-group-commit.ts). `work` must touch the
 * database only through the Atomic it is given (see unit-of-work.ts for what is refused).
 */
export async function atomically<T>(db: Knex, work: (tx: Atomic) => Promise<T>): Promise<T> {
  refuseNested(db);
  const group = groupCommits.get(db);
  if (group) return group.submit((statements) => runUnit(db, statements, work));
  return db.transaction((trx) =>
    runUnit(
      db,
      {
        first: async (q) => (q instanceof Statement ? ((await trx.raw(q.sql, q.bindings as Knex.RawBinding[])) as { rows: any[] }).rows[0] : ((await q.first().transacting(trx)) as any)),
        run: async (q) => {
          const out: unknown = await (q instanceof Statement ? trx.raw(q.sql, q.bindings as Knex.RawBinding[]) : q.transacting(trx));
          // A builder's update or delete gives the count; a Statement gives pg's result.
          if (typeof out === "number") return out;
          if (Array.isArray(out)) return out.length;
          return (out as { rowCount?: number | null } | undefined)?.rowCount ?? 0;
        },
      },
      work,
    ),
  );
}

/** Runs writes as one transaction (see atomically). */
export async function writeAtomically(db: Knex, writes: Knex.QueryBuilder[]): Promise<void> {
  await atomically(db, async (tx) => {
    for (const w of writes) await tx.run(w);
  });
}

/** SQLite databases opened here, each with its group commit; PostgreSQL ones are absent. */
const groupCommits = new WeakMap<Knex, GroupCommit>();

export async function pingDatabase(db: Knex): Promise<void> {
  try {
    await db.raw("select 1");
  } catch (err) {
    throw new DependencyUnavailableError("database", "the database did not answer", { cause: err });
  }
}

interface SqliteConnection extends RawSqlite {
  pragma(s: string): unknown;
}
