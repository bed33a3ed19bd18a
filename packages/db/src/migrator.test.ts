import { afterEach, describe, expect, it } from "vitest";
import { migrate, openDatabase, pendingMigrations, prepareSchema, SchemaBehindError, type Database, type DatabaseSettings } from "./connection.ts";
import { freshDatabase, type TestDatabase } from "./testing.ts";

/**
 * Several processes starting at once on an empty PostgreSQL database (a deploy, a scale-out,
 * the compose stack) each run the migrations. knex's own lock is a row in a table it creates
 * first, and creating that table races: eight processes started together crashed one with
 * `relation "intake_migrations_lock" already exists` (before the advisory lock this test
 * failed 7 or 8 of 8 migrators on every run). Each migrator here has its own pool, as a
 * separate process would.
 */
const MIGRATORS = 8;

let t: TestDatabase | undefined;
const opened: Database[] = [];
const open = (settings: DatabaseSettings) => {
  const db = openDatabase(settings);
  opened.push(db);
  return db;
};
afterEach(async () => {
  await Promise.all(opened.splice(0).map((db) => db.destroy()));
  await t?.drop();
  t = undefined;
});

const migrationNames = async (db: Database) => ((await db("intake_migrations").select("name").orderBy("id")) as { name: string }[]).map((r) => r.name);

describe("migrations started by many processes at once on PostgreSQL", () => {
  it(`all ${MIGRATORS} succeed on an empty database and every migration runs once`, async () => {
    t = await freshDatabase("pg", { migrated: false });
    const migrators = Array.from({ length: MIGRATORS }, () => open(t!.settings));
    const results = await Promise.allSettled(migrators.map((db) => migrate(db)));
    expect(results.flatMap((r) => (r.status === "rejected" ? [String((r.reason as Error).message)] : []))).toEqual([]);
    const names = await migrationNames(t.db);
    expect(names.length).toBeGreaterThan(0);
    expect(new Set(names).size).toBe(names.length);
    expect(await pendingMigrations(t.db)).toEqual([]);
    expect(await t.db.schema.hasTable("uploads")).toBe(true);
  });

  it("a migrator whose pool holds one connection does not wait on itself (the lock has its own)", async () => {
    t = await freshDatabase("pg", { migrated: false });
    const settings = t.settings as Extract<DatabaseSettings, { client: "pg" }>;
    await Promise.all([migrate(open({ ...settings, poolMax: 1 })), migrate(open({ ...settings, poolMax: 1 }))]);
    expect(await pendingMigrations(t.db)).toEqual([]);
  });

  it("a migrator that fails releases the lock: the next one runs", async () => {
    t = await freshDatabase("pg", { migrated: false });
    // A table in the way of the first migration: that migration fails, its transaction rolls back.
    await t.db.schema.createTable("tenants", (tb) => tb.string("id"));
    await expect(migrate(open(t.settings))).rejects.toThrow(/tenants.*already exists/);
    await t.db.schema.dropTable("tenants");
    await migrate(open(t.settings));
    expect(await pendingMigrations(t.db)).toEqual([]);
  });
});

describe.each(["pg", "sqlite"] as const)("a process start on %s", (kind) => {
  it("with MIGRATE_ON_START off refuses an empty or older schema, naming what is missing, and creates nothing", async () => {
    t = await freshDatabase(kind, { migrated: false });
    const err = await prepareSchema(t.db, { migrateOnStart: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaBehindError);
    expect((err as SchemaBehindError).pending[0]).toMatch(/^0001_/);
    expect((err as Error).message).toMatch(/schema is behind.*npm run migrate/);
    expect(await t.db.schema.hasTable("intake_migrations")).toBe(false);

    // One migration short: still refused, and only that one is named.
    await migrate(t.db);
    const names = await migrationNames(t.db);
    await t.db("intake_migrations").where({ name: names.at(-1) }).del();
    await expect(prepareSchema(t.db, { migrateOnStart: false })).rejects.toMatchObject({ pending: [names.at(-1)] });
  });

  it("with MIGRATE_ON_START off starts on a current schema, and on one a newer release moved ahead", async () => {
    t = await freshDatabase(kind);
    await prepareSchema(t.db, { migrateOnStart: false });
    await t.db("intake_migrations").insert({ name: "9999_from_a_newer_release", batch: 99, migration_time: new Date() });
    await prepareSchema(t.db, { migrateOnStart: false });
  });

  it("with MIGRATE_ON_START on migrates an empty database", async () => {
    t = await freshDatabase(kind, { migrated: false });
    await prepareSchema(t.db, { migrateOnStart: true });
    expect(await pendingMigrations(t.db)).toEqual([]);
  });
});

describe("the PostgreSQL pool size (DATABASE_POOL_MAX)", () => {
  it("never opens more connections than poolMax, however many queries wait", async () => {
    t = await freshDatabase("pg");
    const db = open({ ...(t.settings as Extract<DatabaseSettings, { client: "pg" }>), poolMax: 3 });
    const name = new URL((t.settings as { url: string }).url).pathname.slice(1);
    const seen = new Set<number>();
    let most = 0;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        const r = await db.raw("select pg_backend_pid() as pid, (select count(*) from pg_stat_activity where datname = ? and pid <> pg_backend_pid()) as others, pg_sleep(0.15)", [name]);
        const row = (r as { rows: { pid: number; others: string }[] }).rows[0];
        seen.add(row.pid);
        most = Math.max(most, Number(row.others));
      }),
    );
    expect(seen.size).toBe(3);
    // The others on this database: this pool's two other connections and t.db's (at most its own pool).
    expect(most).toBeGreaterThanOrEqual(2);
  });
});
