import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createRequire } from "node:module";
import knexFactory, { type Knex } from "knex";
import { DependencyUnavailableError } from "@intake/domain";
import { migrationSource } from "./migrations.ts";

export type DatabaseSettings = { client: "pg"; url: string } | { client: "sqlite"; filename: string };

export type Database = Knex;

export function openDatabase(settings: DatabaseSettings): Knex {
  if (settings.client === "pg") {
    return knexFactory({ client: "pg", connection: settings.url, pool: { min: 0, max: 10 } });
  }
  if (settings.filename !== ":memory:") mkdirSync(dirname(settings.filename), { recursive: true });
  const db = knexFactory({
    client: ImmediateSqliteClient as unknown as typeof Knex.Client,
    connection: { filename: settings.filename },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      // WAL lets the API read while a worker writes; busy_timeout makes concurrent
      // processes (API + workers on one SQLite file) wait for the lock instead of failing.
      afterCreate: (conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) => {
        conn.pragma("journal_mode = WAL");
        // In WAL mode NORMAL syncs at checkpoints, not on every commit: a commit survives a
        // process crash, only an OS crash or power loss can take the last ones back (SQLite
        // docs, "PRAGMA synchronous"). Fine for the embedded single-machine database; the
        // production database is PostgreSQL.
        conn.pragma("synchronous = NORMAL");
        conn.pragma("busy_timeout = 5000");
        conn.pragma("foreign_keys = ON");
        cachePreparedStatements(conn);
        done(null, conn);
      },
    },
  });
  return db;
}

/**
 * The statements of one atomic unit of work. The same unit runs on PostgreSQL (a knex
 * transaction of its own) and on SQLite (a savepoint inside a group commit), so callers
 * write their logic once.
 */
export interface Atomic {
  /** First row of a select, or undefined. */
  first<Row = Record<string, any>>(query: Knex.QueryBuilder): Promise<Row | undefined>;
  /** Runs an insert, update or delete; resolves to the rows an update or delete changed. */
  run(query: Knex.QueryBuilder): Promise<number>;
}

/**
 * Runs `work` atomically: all of its writes or none. On PostgreSQL a knex transaction. On
 * SQLite the unit joins a group commit (below). `work` must touch the database only
 * through the Atomic it is given.
 */
export async function atomically<T>(db: Knex, work: (tx: Atomic) => Promise<T>): Promise<T> {
  if (!isSqlite(db)) {
    return db.transaction((trx) =>
      work({
        first: async (q) => (await q.first().transacting(trx)) as any,
        run: async (q) => {
          const out = await q.transacting(trx);
          return typeof out === "number" ? out : Array.isArray(out) ? out.length : 0;
        },
      }),
    );
  }
  let group = groupCommits.get(db);
  if (!group) groupCommits.set(db, (group = new GroupCommit(db)));
  return group.submit(work);
}

/** Runs writes as one transaction (see atomically). */
export async function writeAtomically(db: Knex, writes: Knex.QueryBuilder[]): Promise<void> {
  await atomically(db, async (tx) => {
    for (const w of writes) await tx.run(w);
  });
}

interface RawStatement {
  run(bindings: readonly unknown[]): { changes: number };
  get(bindings: readonly unknown[]): unknown;
}

interface RawSqlite {
  prepare(sql: string): RawStatement;
  readonly inTransaction: boolean;
}

interface GroupEntry {
  work(tx: Atomic): Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

const groupCommits = new WeakMap<Knex, GroupCommit>();

/**
 * Group commit for SQLite. What a write costs on SQLite is mostly its COMMIT: each one
 * appends every page it touched to the WAL (an upload row and its five indexes, an audit
 * row and its two), and every thousand WAL pages a checkpoint syncs to disk. That was 70%
 * of the create endpoint's CPU, and knex's own transaction machinery (a transaction-scoped
 * knex instance, BEGIN, each statement and COMMIT as separate async queries) costs several
 * times the statements themselves. Units of work submitted in the same turn of the event
 * loop (the requests or jobs that arrived together) therefore run on the raw connection in
 * one BEGIN IMMEDIATE transaction, each inside a SAVEPOINT of its own: one failing (a
 * duplicate idempotency key) rolls back alone and rejects alone, the others commit. Nobody
 * is answered before the COMMIT that holds their writes has returned, so each unit gets
 * the atomicity and durability a transaction of its own would give. The units run one
 * after another while the group holds the only connection: nothing else can interleave.
 */
class GroupCommit {
  private queue: GroupEntry[] = [];
  private scheduled = false;
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  submit<T>(work: (tx: Atomic) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate, not a microtask: it runs after the poll phase has handed every
        // request that is already readable to its handler, so those join this group.
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const client = this.db.client as { acquireConnection(): Promise<RawSqlite>; releaseConnection(c: RawSqlite): Promise<unknown> };
    let conn: RawSqlite;
    try {
      conn = await client.acquireConnection();
    } catch (err) {
      this.scheduled = false;
      for (const e of this.queue.splice(0)) e.reject(err);
      return;
    }
    // Taken once the connection is ours: units submitted while we waited for it join too.
    this.scheduled = false;
    const group = this.queue.splice(0, MAX_GROUP);
    if (this.queue.length > 0) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
    const exec = (sql: string) => conn.prepare(sql).run([]);
    const tx: Atomic = {
      first: async (q) => {
        const { sql, bindings } = q.first().toSQL().toNative();
        return conn.prepare(sql).get(bindings) as any;
      },
      run: async (q) => {
        const { sql, bindings } = q.toSQL().toNative();
        return conn.prepare(sql).run(bindings).changes;
      },
    };
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      exec("BEGIN IMMEDIATE");
      for (const e of group) {
        exec("SAVEPOINT unit");
        let outcome: (typeof outcomes)[number];
        try {
          outcome = { ok: true, value: await e.work(tx) };
        } catch (err) {
          outcome = { ok: false, err };
        }
        // A failing RELEASE or ROLLBACK TO throws out of the group (all rejected) before
        // this unit's outcome is recorded, so outcomes stay aligned with the group.
        if (!outcome.ok) exec("ROLLBACK TO unit");
        exec("RELEASE unit");
        outcomes.push(outcome);
      }
      exec("COMMIT");
    } catch (err) {
      // BEGIN, a savepoint step or COMMIT failed: nothing of this group was written.
      for (const e of group) e.reject(err);
      return;
    } finally {
      // Never hand the pool a connection still inside a transaction (SQLite may also have
      // rolled back by itself: SQLITE_FULL, IOERR, BUSY on COMMIT): every later write would
      // join it and never commit.
      if (conn.inTransaction) {
        try {
          exec("ROLLBACK");
        } catch {
          // nothing more to try; the group's callers already have the original error
        }
      }
      await client.releaseConnection(conn).catch(() => undefined);
    }
    group.forEach((e, i) => {
      const o = outcomes[i]!;
      if (o.ok) e.resolve(o.value);
      else e.reject(o.err);
    });
  }
}

// Bounds how long one group holds the event loop and the write lock (a few ms).
const MAX_GROUP = 128;

function isSqlite(db: Knex): boolean {
  return db.client instanceof ImmediateSqliteClient;
}

/**
 * knex opens SQLite transactions with a plain (deferred) BEGIN. The API and the workers are
 * separate processes on one WAL file: a deferred transaction that reads and then writes
 * fails with SQLITE_BUSY_SNAPSHOT when another process committed in between, and
 * busy_timeout does not retry that. BEGIN IMMEDIATE takes the write lock up front, so a
 * concurrent writer makes it wait (busy_timeout) instead. Every transaction here writes, so
 * nothing is lost by taking the lock early.
 */
const knexInternals = createRequire(import.meta.url);
type Ctor = new (...args: any[]) => any;
const BetterSqlite3Client: Ctor = knexInternals("knex/lib/dialects/better-sqlite3/index.js");
const SqliteTransaction: Ctor = knexInternals("knex/lib/dialects/sqlite3/execution/sqlite-transaction.js");
class ImmediateSqliteTransaction extends SqliteTransaction {
  begin(conn: unknown) {
    return this.query(conn, "BEGIN IMMEDIATE;");
  }
}
class ImmediateSqliteClient extends BetterSqlite3Client {
  transaction(...args: unknown[]) {
    return new ImmediateSqliteTransaction(this, ...args);
  }
}

export async function migrate(db: Knex): Promise<void> {
  await db.migrate.latest({ migrationSource, tableName: "intake_migrations" });
}

export async function pingDatabase(db: Knex): Promise<void> {
  try {
    await db.raw("select 1");
  } catch (err) {
    throw new DependencyUnavailableError("database", "the database did not answer", { cause: err });
  }
}

interface SqliteConnection {
  pragma(s: string): unknown;
  prepare(sql: string): unknown;
}

/**
 * knex prepares every query anew, and on SQLite preparing costs as much as running: a
 * quarter of the create endpoint's CPU. Our queries come from a few dozen shapes, so
 * the connection keeps the compiled statements by SQL text. Safe because better-sqlite3
 * runs each statement to completion synchronously: a cached statement is never in use
 * twice at once. Bounded, in case something builds SQL with literals in it.
 */
function cachePreparedStatements(conn: SqliteConnection, max = 500): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (cache.size >= max) cache.delete(cache.keys().next().value!);
      cache.set(sql, statement);
    }
    return statement;
  };
}
