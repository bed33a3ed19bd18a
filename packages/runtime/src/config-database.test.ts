import { describe, expect, it } from "vitest";
import { CONFIG_VARIABLES, loadConfig, loadDatabaseConfig } from "./config.ts";

const base = { S3_BUCKET: "intake-uploads" };
const pg = { ...base, DATABASE_URL: "postgres://intake@db:5432/intake" };

describe("database pool and migrations at start", () => {
  it("sizes the PostgreSQL pool from DATABASE_POOL_MAX (default 10), for the programs and the CLIs alike", () => {
    expect(loadConfig(pg).database).toEqual({ client: "pg", url: pg.DATABASE_URL, poolMax: 10 });
    expect(loadConfig({ ...pg, DATABASE_POOL_MAX: "4" }).database).toMatchObject({ poolMax: 4 });
    expect(loadDatabaseConfig({ ...pg, DATABASE_POOL_MAX: "3" }).database).toMatchObject({ poolMax: 3 });
    for (const bad of ["0", "101", "2.5", "ten"]) expect(() => loadConfig({ ...pg, DATABASE_POOL_MAX: bad }), bad).toThrow(/DATABASE_POOL_MAX/);
  });

  it("migrates at start outside production only, unless MIGRATE_ON_START says otherwise", () => {
    expect(loadConfig(base).migrateOnStart).toBe(true);
    expect(loadConfig({ ...base, NODE_ENV: "test" }).migrateOnStart).toBe(true);
    expect(loadConfig({ ...pg, NODE_ENV: "production" }).migrateOnStart).toBe(false);
    expect(loadConfig({ ...pg, NODE_ENV: "production", MIGRATE_ON_START: "true" }).migrateOnStart).toBe(true);
    expect(loadConfig({ ...base, MIGRATE_ON_START: "false" }).migrateOnStart).toBe(false);
    expect(() => loadConfig({ ...base, MIGRATE_ON_START: "sometimes" })).toThrow(/MIGRATE_ON_START/);
  });

  it("lists the variables it reads, from its schema", () => {
    expect(CONFIG_VARIABLES).toEqual(expect.arrayContaining(["DATABASE_URL", "DATABASE_POOL_MAX", "MIGRATE_ON_START", "WORKER_ROLES", "S3_BUCKET"]));
    expect(CONFIG_VARIABLES).not.toContain("AWS_SECRET_ACCESS_KEY");
  });
});
