/**
 * One atomic unit of work, the same on both databases: on PostgreSQL a knex transaction of
 * its own, on SQLite a savepoint inside a group commit (sqlite-group-commit.ts). What the
 * backends would do differently with a misused unit is refused here for both.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Knex } from "knex";

/** The statements of one atomic unit of work. */
export interface Atomic {
  /** First row of a select (or of an update's RETURNING), or undefined. */
  first<Row = Record<string, any>>(query: Knex.QueryBuilder | Statement): Promise<Row | undefined>;
  /** Runs an insert, update or delete; resolves to the rows an update or delete changed. */
  run(query: Knex.QueryBuilder | Statement): Promise<number>;
}

/**
 * SQL of fixed text with `?` placeholders, and its values (strings, numbers or null): run as
 * it is. For the hot paths (the API's create, the pipeline's transitions), where compiling a
 * knex builder (or even a knex.raw) cost more than SQLite running the statement. Write it in
 * SQL both databases read alike.
 */
export class Statement {
  readonly sql: string;
  readonly bindings: readonly (string | number | null)[];
  constructor(sql: string, bindings: readonly (string | number | null)[]) {
    this.sql = sql;
    this.bindings = bindings;
  }
}

/** A unit used in a way that would deadlock or commit something else than it says. */
export class UnitOfWorkError extends Error {
  readonly code: "nested_unit" | "unit_finished";
  constructor(code: UnitOfWorkError["code"], message: string) {
    super(message);
    this.name = "UnitOfWorkError";
    this.code = code;
  }
}

interface Scope {
  db: object;
  open: boolean;
}
const running = new AsyncLocalStorage<Scope>();

/**
 * A unit may not start another on the same database. On SQLite the inner one waits for the
 * pool's only connection, which the outer one holds until the inner one ends: a deadlock
 * until knex's acquire timeout (60 s). On PostgreSQL it would commit on its own, whatever
 * the outer one does later. Pass the unit's Atomic down instead.
 */
export function refuseNested(db: object): void {
  const scope = running.getStore();
  if (scope?.open && scope.db === db) {
    throw new UnitOfWorkError("nested_unit", "atomically() was called inside a unit of work on the same database; pass its Atomic down instead");
  }
}

/**
 * Runs `work` on `statements` (the backend's transaction or savepoint) and settles as the
 * unit must:
 * - a statement that failed fails the unit, even when `work` caught it. PostgreSQL aborts
 *   the whole transaction on a failed statement and answers COMMIT with a silent ROLLBACK,
 *   so the unit would report success with nothing written; SQLite undoes only the statement
 *   and would commit the rest. Neither is what the caller was told.
 * - once the unit has ended its Atomic refuses statements: on SQLite they would run on the
 *   shared connection outside any unit, or inside another unit's savepoint.
 */
export async function runUnit<T>(db: object, statements: Atomic, work: (tx: Atomic) => Promise<T>): Promise<T> {
  const scope: Scope = { db, open: true };
  let failed: { err: unknown } | undefined;
  const guarded = <R>(step: () => Promise<R>): Promise<R> => {
    if (!scope.open) return Promise.reject(new UnitOfWorkError("unit_finished", "a statement was run on a unit of work that has already ended"));
    return step().catch((err: unknown) => {
      failed ??= { err };
      throw err;
    });
  };
  const tx: Atomic = {
    first: (q) => guarded(() => statements.first(q)),
    run: (q) => guarded(() => statements.run(q)),
  };
  try {
    const value = await running.run(scope, () => work(tx));
    if (failed) throw failed.err;
    return value;
  } finally {
    scope.open = false;
  }
}
