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
 * Runs writes as one transaction. On PostgreSQL that is a knex transaction. On SQLite the
 * writes join a group commit (below).
 */
export async function writeAtomically(db: Knex, writes: Knex.QueryBuilder[]): Promise<void> {
  if (!isSqlite(db)) {
    await db.transaction(async (trx) => {
      for (const w of writes) await w.transacting(trx);
    });
    return;
  }
  const statements = writes.map((w) => w.toSQL().toNative());
  let batcher = groupCommits.get(db);
  if (!batcher) groupCommits.set(db, (batcher = new GroupCommit(db)));
  await batcher.submit(statements);
}

interface RawSqlite {
  prepare(sql: string): { run(bindings: readonly unknown[]): unknown };
  transaction<A extends unknown[]>(fn: (...args: A) => void): ((...args: A) => void) & { immediate(...args: A): void };
}

type NativeStatement = { sql: string; bindings: readonly unknown[] };

interface GroupEntry {
  statements: NativeStatement[];
  resolve(): void;
  reject(err: unknown): void;
}

const groupCommits = new WeakMap<Knex, GroupCommit>();

/**
 * Group commit for SQLite. What a write costs on SQLite is mostly its COMMIT: each one
 * appends every page it touched to the WAL (the uploads row and its five indexes, the
 * audit row and its two), and every thousand WAL pages a checkpoint syncs to disk. That
 * was 70% of the create endpoint's CPU. Writes submitted in the same turn of the event
 * loop (the requests that arrived together) therefore run in one BEGIN IMMEDIATE
 * transaction, each inside a SAVEPOINT of its own: one failing (a duplicate idempotency
 * key) rolls back alone and rejects alone, the others commit. Nobody is answered before
 * the COMMIT that holds their writes has returned, so atomicity and durability per call
 * are what a transaction of its own would give. Statements come from the connection's
 * prepared-statement cache and run synchronously on the raw connection: a knex
 * transaction costs several times the inserts themselves.
 */
class GroupCommit {
  private queue: GroupEntry[] = [];
  private scheduled = false;
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  submit(statements: NativeStatement[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ statements, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate, not a microtask: it runs after the poll phase has handed every
        // request that is already readable to its handler, so those join this batch.
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.queue.splice(0, MAX_GROUP);
    if (this.queue.length > 0) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
    const client = this.db.client as { acquireConnection(): Promise<RawSqlite>; releaseConnection(c: RawSqlite): Promise<unknown> };
    let conn: RawSqlite;
    try {
      conn = await client.acquireConnection();
    } catch (err) {
      for (const e of batch) e.reject(err);
      return;
    }
    const failures = new Map<GroupEntry, unknown>();
    try {
      // Called inside the outer transaction, better-sqlite3 runs this one as a SAVEPOINT.
      const one = conn.transaction((statements: NativeStatement[]) => {
        for (const s of statements) conn.prepare(s.sql).run(s.bindings);
      });
      conn
        .transaction(() => {
          for (const e of batch) {
            try {
              one(e.statements);
            } catch (err) {
              failures.set(e, err);
            }
          }
        })
        .immediate();
    } catch (err) {
      // BEGIN or COMMIT failed (busy past busy_timeout, disk full): nothing was written.
      for (const e of batch) e.reject(err);
      return;
    } finally {
      await client.releaseConnection(conn);
    }
    for (const e of batch) {
      if (failures.has(e)) e.reject(failures.get(e));
      else e.resolve();
    }
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
