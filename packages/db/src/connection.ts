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
 * Runs writes as one transaction. On PostgreSQL that is a knex transaction. On SQLite it
 * runs on the raw connection, synchronously in one go (BEGIN IMMEDIATE, like every
 * transaction here, with statements from the prepared-statement cache): a knex transaction
 * costs several times the inserts themselves (a transaction-scoped knex instance, BEGIN and
 * COMMIT as separate async queries), and the create endpoint pays it on every request.
 */
export async function writeAtomically(db: Knex, writes: Knex.QueryBuilder[]): Promise<void> {
  if (!isSqlite(db)) {
    await db.transaction(async (trx) => {
      for (const w of writes) await w.transacting(trx);
    });
    return;
  }
  const statements = writes.map((w) => w.toSQL().toNative());
  const client = db.client as { acquireConnection(): Promise<RawSqlite>; releaseConnection(c: RawSqlite): Promise<unknown> };
  const conn = await client.acquireConnection();
  try {
    conn
      .transaction(() => {
        for (const s of statements) conn.prepare(s.sql).run(s.bindings);
      })
      .immediate();
  } finally {
    await client.releaseConnection(conn);
  }
}

interface RawSqlite {
  prepare(sql: string): { run(bindings: readonly unknown[]): unknown };
  transaction(fn: () => void): { immediate(): void };
}

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
