/**
 * Group commit for SQLite. What a write costs on SQLite is mostly its COMMIT: each one
 * appends every page it touched to the WAL (an upload row and its five indexes, an audit
 * row and its two), and every thousand WAL pages a checkpoint syncs to disk. That was 70%
 * of the create endpoint's CPU. Units of work submitted in the same turn of the event loop
 * (the requests or jobs that arrived together) therefore share one transaction, each inside
 * a SAVEPOINT of its own: one failing (a duplicate idempotency key) rolls back alone and
 * rejects alone, the others commit. Nobody is answered before the COMMIT that holds their
 * writes has returned, so each unit gets the atomicity and durability a transaction of its
 * own would give.
 *
 * Built on what knex and better-sqlite3 document, nothing of knex's internals:
 * - the group is one knex transaction (`db.transaction`). The pool has one connection, so
 *   while the transaction holds it no other query of this process can run, or see the
 *   group's uncommitted rows. knex sends BEGIN; the group sends its own COMMIT while it
 *   still holds the connection (see commit below), and knex's COMMIT closes what is left;
 * - the statements run on that connection as better-sqlite3 gives it to the pool's
 *   `afterCreate` hook, prepared once per SQL text in a cache of our own (preparing costs
 *   on SQLite as much as running; knex's own queries are left as knex runs them);
 * - knex's BEGIN is deferred. The API and the workers are separate processes on one WAL
 *   file: a deferred transaction that reads and then writes fails with SQLITE_BUSY_SNAPSHOT
 *   when another process committed in between, and busy_timeout does not retry that. "If
 *   the first statement after BEGIN DEFERRED is a write statement, then a write transaction
 *   is started" (SQLite, lang_transaction), and starting one waits on busy_timeout: so the
 *   group's first statement is a write that changes nothing, which is BEGIN IMMEDIATE's
 *   effect (it takes the write lock and appends no page to the WAL; checked here).
 */
import type { Knex } from "knex";
import { Statement, type Atomic } from "./unit-of-work.ts";

/** The part of a better-sqlite3 connection the group uses. */
export interface RawSqlite {
  prepare(sql: string): RawStatement;
  readonly inTransaction: boolean;
}
interface RawStatement {
  run(bindings: readonly unknown[]): { changes: number };
  get(bindings: readonly unknown[]): unknown;
}

interface GroupEntry {
  work(tx: Atomic): Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}
type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

// Bounds how long one group holds the event loop and the write lock (a few ms).
const MAX_GROUP = 128;
// Bounded, in case something builds SQL with literals in it.
const MAX_STATEMENTS = 500;

export class GroupCommit {
  private queue: GroupEntry[] = [];
  private scheduled = false;
  private readonly db: Knex;
  private readonly connection: () => RawSqlite | undefined;
  private readonly takeWriteLock: string;
  private readonly statements = new WeakMap<RawSqlite, Map<string, RawStatement>>();

  /**
   * `connection` is the pool's only connection (from afterCreate); `writeLockTable` any
   * table that exists once the database is migrated.
   */
  constructor(db: Knex, connection: () => RawSqlite | undefined, writeLockTable: string) {
    this.db = db;
    this.connection = connection;
    this.takeWriteLock = `UPDATE "${writeLockTable}" SET id = id WHERE 0`;
  }

  submit<T>(work: (tx: Atomic) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: it runs after the poll phase has handed every request
    // that is already readable to its handler, so those join this group.
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    let group: GroupEntry[] | undefined;
    let outcomes: Outcome[] = [];
    let committed = false;
    try {
      await this.db.transaction(async () => {
        // Taken once the connection is ours: units submitted while we waited for it join too.
        this.scheduled = false;
        group = this.queue.splice(0, MAX_GROUP);
        if (this.queue.length > 0) this.schedule();
        const conn = this.connection();
        // knex's BEGIN has run on the pool's one connection; if this is not it, stop here.
        if (!conn?.inTransaction) throw new Error("group commit: the pool's connection is not the one in the transaction");
        outcomes = await this.runUnits(conn, group);
        this.commit(conn);
        committed = true;
      });
    } catch (err) {
      // Failed before our COMMIT (the connection, BEGIN, a savepoint step, COMMIT itself):
      // nothing of this group was written. Before the group was taken, everyone waiting is in it.
      if (!group) {
        this.scheduled = false;
        group = this.queue.splice(0);
      }
      // After it, only knex's closing of the empty transaction failed: the group's writes stand.
      if (!committed) {
        for (const e of group) e.reject(err);
        return;
      }
    }
    group!.forEach((e, i) => {
      const o = outcomes[i]!;
      if (o.ok) e.resolve(o.value);
      else e.reject(o.err);
    });
  }

  /**
   * Commits while the group still holds the connection. knex's own COMMIT would come with
   * the connection handed back to the pool whatever it answered, and a failed COMMIT can
   * leave the transaction open (SQLite, "Response To Errors Within A Transaction": after
   * SQLITE_FULL, IOERR, BUSY or a deferred foreign key violation, issue a ROLLBACK): the
   * pool's next query would then run inside it, and be rolled back or never committed. So
   * the group commits, rolls back itself if that fails, and leaves an empty transaction for
   * knex's COMMIT or ROLLBACK to close.
   */
  private commit(conn: RawSqlite): void {
    const exec = (sql: string) => this.statement(conn, sql).run([]);
    try {
      exec("COMMIT");
    } catch (err) {
      if (conn.inTransaction) exec("ROLLBACK");
      exec("BEGIN");
      throw err;
    }
    exec("BEGIN");
  }

  /** Inside the group's transaction: each unit in a savepoint of its own, in order. */
  private async runUnits(conn: RawSqlite, group: GroupEntry[]): Promise<Outcome[]> {
    const exec = (sql: string) => this.statement(conn, sql).run([]);
    const tx: Atomic = {
      first: async (q) => {
        const { sql, bindings } = q instanceof Statement ? q : q.first().toSQL().toNative();
        return this.statement(conn, sql).get(bindings) as any;
      },
      run: async (q) => {
        const { sql, bindings } = q instanceof Statement ? q : q.toSQL().toNative();
        return this.statement(conn, sql).run(bindings).changes;
      },
    };
    exec(this.takeWriteLock);
    const outcomes: Outcome[] = [];
    for (const e of group) {
      exec("SAVEPOINT unit");
      let outcome: Outcome;
      try {
        outcome = { ok: true, value: await e.work(tx) };
      } catch (err) {
        outcome = { ok: false, err };
      }
      if (!outcome.ok && !conn.inTransaction) {
        // SQLite rolled back the whole transaction, as it may on SQLITE_FULL, IOERR, NOMEM or
        // BUSY ("Response To Errors Within A Transaction"): every unit of the group is lost,
        // and this error is why. The empty transaction is for knex's ROLLBACK to close; without
        // it knex rejected everyone with "cannot rollback - no transaction is active".
        exec("BEGIN");
        throw outcome.err;
      }
      // A failing RELEASE or ROLLBACK TO throws out of the group (all rejected) before
      // this unit's outcome is recorded, so outcomes stay aligned with the group.
      if (!outcome.ok) exec("ROLLBACK TO unit");
      exec("RELEASE unit");
      outcomes.push(outcome);
    }
    return outcomes;
  }

  /**
   * Our own prepared statements, by SQL text. Safe because only the group runs them, with
   * run() and get(), which better-sqlite3 runs to completion synchronously: a statement is
   * never in use twice at once, and none has its mode changed.
   */
  private statement(conn: RawSqlite, sql: string): RawStatement {
    let cache = this.statements.get(conn);
    if (!cache) this.statements.set(conn, (cache = new Map()));
    let s = cache.get(sql);
    if (s === undefined) {
      s = conn.prepare(sql);
      if (cache.size >= MAX_STATEMENTS) cache.delete(cache.keys().next().value!);
      cache.set(sql, s);
    }
    return s;
  }
}
