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

/** A new, migrated database of the given kind, owned by the caller. */
export async function freshDatabase(kind: DatabaseKind): Promise<TestDatabase> {
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "intake-db-"));
    const settings: DatabaseSettings = { client: "sqlite", filename: join(dir, "intake.sqlite") };
    const db = openDatabase(settings);
    await migrate(db);
    return {
      kind,
      db,
      settings,
      drop: async () => {
        await db.destroy();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const name = `intake_test_${randomBytes(6).toString("hex")}`;
  const admin = knexFactory({ client: "pg", connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`create database ${name}`);
  await admin.destroy();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const settings: DatabaseSettings = { client: "pg", url: url.toString() };
  const db = openDatabase(settings);
  await migrate(db);
  return {
    kind,
    db,
    settings,
    drop: async () => {
      await db.destroy();
      const a = knexFactory({ client: "pg", connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
      await a.raw(`drop database if exists ${name} with (force)`);
      await a.destroy();
    },
  };
}
