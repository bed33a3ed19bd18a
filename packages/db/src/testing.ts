/**
 * Fresh, migrated databases for tests (SQLite files and PostgreSQL databases created and
 * dropped per call). Lives with the db package so its own tests need no test workspace
 * (which depends on every package): `@intake/db/testing`.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import knexFactory from "knex";
import { migrate, openDatabase, type Database, type DatabaseSettings } from "./index.ts";

export type DatabaseKind = "sqlite" | "pg";
export const DATABASE_KINDS: DatabaseKind[] = ["sqlite", "pg"];

/** PostgreSQL server for tests: a fresh database per call is created on it and dropped after. */
export const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  kind: DatabaseKind;
  db: Database;
  settings: DatabaseSettings;
  drop(): Promise<void>;
}

/**
 * A new database of the given kind, owned by the caller: migrated, or empty with
 * `{ migrated: false }` (for tests of the migrations themselves).
 */
export async function freshDatabase(kind: DatabaseKind, opts: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const migrated = opts.migrated ?? true;
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "intake-db-"));
    return opened(kind, { client: "sqlite", filename: join(dir, "intake.sqlite") }, migrated, async () => rmSync(dir, { recursive: true, force: true }));
  }
  const name = `intake_test_${randomBytes(6).toString("hex")}`;
  await asAdmin(`create database ${name}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return opened(kind, { client: "pg", url: url.toString() }, migrated, () => asAdmin(`drop database if exists ${name} with (force)`));
}

async function opened(kind: DatabaseKind, settings: DatabaseSettings, migrated: boolean, remove: () => Promise<void>): Promise<TestDatabase> {
  const db = openDatabase(settings);
  if (migrated) await migrate(db);
  return {
    kind,
    db,
    settings,
    drop: async () => {
      await db.destroy();
      await remove();
    },
  };
}

/** One statement on the PostgreSQL server's admin database (CREATE/DROP DATABASE cannot run in the test's own). */
async function asAdmin(sql: string): Promise<void> {
  const admin = knexFactory({ client: "pg", connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
  try {
    await admin.raw(sql);
  } finally {
    await admin.destroy();
  }
}

/**
 * Drops the audit trail's append-only triggers, for tests that tamper with it as someone with
 * the database owner's rights would (the hash chain is what must catch them then).
 */
export { allowAuditEdits } from "./migrations.ts";
