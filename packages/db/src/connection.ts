import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
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
    client: "better-sqlite3",
    connection: { filename: settings.filename },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      // WAL lets the API read while a worker writes; busy_timeout makes concurrent
      // processes (API + workers on one SQLite file) wait for the lock instead of failing.
      afterCreate: (conn: { pragma(s: string): unknown }, done: (err: Error | null, conn: unknown) => void) => {
        conn.pragma("journal_mode = WAL");
        conn.pragma("busy_timeout = 5000");
        conn.pragma("foreign_keys = ON");
        done(null, conn);
      },
    },
  });
  return db;
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
