import { createHash } from "node:crypto";
import knexFactory, { type Knex } from "knex";
import { migrationSource } from "./migrations.ts";

export const MIGRATIONS_TABLE = "intake_migrations";

/**
 * The PostgreSQL advisory lock every migrator takes before it touches the schema. knex's own
 * lock is a row in a table that each migrator first checks for and then creates, and that
 * check-then-create races: processes started together on an empty database fail with
 * `relation "intake_migrations" (or "_lock") already exists`. An advisory lock needs no
 * table, and is per database, so the migrators of one database queue behind each other and
 * every one after the first finds nothing left to do. A fixed 64-bit key derived from a name
 * of ours (pg_advisory_lock takes one bigint).
 */
export const MIGRATION_LOCK_KEY = createHash("sha256").update("intake:schema-migrations").digest().readBigInt64BE(0).toString();

/**
 * Brings the schema up to date. On PostgreSQL under the advisory lock, held on a connection
 * of its own outside the pool (knex runs the migrations on pool connections; a pool of one
 * must not wait on itself). A crashed holder's lock goes with its session. SQLite is one
 * process (the embedded stack) and migrates as it always did.
 */
export async function migrate(db: Knex): Promise<void> {
  if (!isPostgres(db)) {
    await db.migrate.latest({ migrationSource, tableName: MIGRATIONS_TABLE });
    return;
  }
  const lockHolder = knexFactory({ client: "pg", connection: (db.client as { config: Knex.Config }).config.connection, pool: { min: 1, max: 1 } });
  try {
    await lockHolder.raw("select pg_advisory_lock(?::bigint)", [MIGRATION_LOCK_KEY]);
    try {
      await db.migrate.latest({ migrationSource, tableName: MIGRATIONS_TABLE });
    } finally {
      await lockHolder.raw("select pg_advisory_unlock(?::bigint)", [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await lockHolder.destroy();
  }
}

/** Names of the migrations this code has that the database has not run (read only: creates nothing). */
export async function pendingMigrations(db: Knex): Promise<string[]> {
  const all = (await migrationSource.getMigrations([])).map((m) => migrationSource.getMigrationName(m));
  if (!(await db.schema.hasTable(MIGRATIONS_TABLE))) return all;
  const done = new Set(((await db(MIGRATIONS_TABLE).select("name")) as { name: string }[]).map((r) => r.name));
  // Migrations the database has and this code does not (a newer release ran them) do not
  // stop an older process: migrations only add, so the rollback of a release keeps working.
  return all.filter((name) => !done.has(name));
}

export class SchemaBehindError extends Error {
  readonly code = "schema_behind" as const;
  readonly pending: string[];
  constructor(pending: string[]) {
    super(
      `the database schema is behind this release: ${pending.length} migration(s) not run (${pending.join(", ")}). ` +
        "Run the migrations first (`npm run migrate`, the compose `migrate` service or the Kubernetes migration Job), " +
        "or set MIGRATE_ON_START=true to let this process run them (the default outside production).",
    );
    this.name = "SchemaBehindError";
    this.pending = pending;
  }
}

/**
 * What a process does with the schema when it starts: migrate it (development, tests, one
 * machine), or, in production where a one-shot migration runs before the rollout, check it
 * and refuse to start on a schema older than the code.
 */
export async function prepareSchema(db: Knex, opts: { migrateOnStart: boolean }): Promise<void> {
  if (opts.migrateOnStart) return migrate(db);
  const pending = await pendingMigrations(db);
  if (pending.length) throw new SchemaBehindError(pending);
}

function isPostgres(db: Knex): boolean {
  return (db.client as { config?: { client?: string } }).config?.client === "pg";
}
