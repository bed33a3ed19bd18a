import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { freshDatabase, type TestDatabase } from "@intake/db/testing";

/**
 * The one-shot migration command (compose's `migrate` service, the Kubernetes Job, `npm run
 * migrate`) as separate processes, and what a production process does on a schema it finds
 * behind: refuses to start instead of migrating as a side effect.
 */
const ROOT = new URL("../..", import.meta.url).pathname;

interface Exit {
  code: number | null;
  out: string;
}

function run(script: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Exit> {
  return new Promise((resolve, reject) => {
    // Only what the command needs: the test runner's own environment (NODE_ENV=test...) stays out.
    const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (out += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${script} ${args.join(" ")} did not exit within ${timeoutMs} ms; output:\n${out}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const MIGRATE = "services/api/src/migrate-cli.ts";

let t: TestDatabase | undefined;
afterEach(async () => {
  await t?.drop();
  t = undefined;
});

describe("the migration command", () => {
  it("four started at once on an empty PostgreSQL database all succeed; status says behind before, up to date after", async () => {
    t = await freshDatabase("pg", { migrated: false });
    const env = { DATABASE_URL: (t.settings as { url: string }).url, NODE_ENV: "production" };
    const before = await run(MIGRATE, ["status"], env);
    expect(before).toMatchObject({ code: 3 });
    expect(before.out).toMatch(/migration\(s\) pending: 0001_/);

    const runs = await Promise.all(Array.from({ length: 4 }, () => run(MIGRATE, [], env)));
    for (const r of runs) expect(r, r.out).toMatchObject({ code: 0 });
    expect(runs.filter((r) => /^ran \d+ migration/m.test(r.out)).length).toBeGreaterThanOrEqual(1);
    expect(await run(MIGRATE, ["status"], env)).toMatchObject({ code: 0, out: "schema up to date\n" });
  });

  it("refuses an unknown command and a bad DATABASE_URL, naming them", async () => {
    expect(await run(MIGRATE, ["down"], {})).toMatchObject({ code: 1, out: expect.stringMatching(/unknown command down/) });
    expect(await run(MIGRATE, [], { DATABASE_URL: "mysql://x@y/z" })).toMatchObject({ code: 78, out: expect.stringMatching(/DATABASE_URL/) });
  });
});

describe("a production process on a schema that is behind", () => {
  const productionEnv = (url: string) => ({ NODE_ENV: "production", DATABASE_URL: url, S3_BUCKET: "intake-uploads", LOG_LEVEL: "info", PORT: "0", WORKER_METRICS_PORT: "0", WORKER_ROLES: "reaper", REDIS_URL: "redis://127.0.0.1:1" });

  for (const program of ["services/api/src/main.ts", "services/worker/src/main.ts"]) {
    it(`${program} refuses to start, says why and what to run, and creates nothing`, async () => {
      t = await freshDatabase("pg", { migrated: false });
      const r = await run(program, [], productionEnv((t.settings as { url: string }).url));
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(/schema is behind this release: \d+ migration\(s\) not run \(0001_/);
      expect(r.out).toMatch(/npm run migrate/);
      expect(await t.db.schema.hasTable("intake_migrations")).toBe(false);
      expect(await t.db.schema.hasTable("uploads")).toBe(false);
    });
  }
});

describe("the database commands in production", () => {
  // Like the processes: they never migrate there (MIGRATE_ON_START off), they refuse a schema
  // that is behind and say what to run; in development they migrate as before.
  for (const [program, args] of [
    ["services/api/src/keys-cli.ts", ["list"]],
    ["services/api/src/admin-cli.ts", ["list"]],
    ["services/api/src/rescan-cli.ts", ["list"]],
  ] as const) {
    it(`${program} ${args.join(" ")} refuses a schema that is behind, names npm run migrate, and creates nothing`, async () => {
      t = await freshDatabase("pg", { migrated: false });
      const r = await run(program, [...args], { NODE_ENV: "production", DATABASE_URL: (t.settings as { url: string }).url });
      expect(r.code, r.out).not.toBe(0);
      expect(r.out).toMatch(/npm run migrate/);
      expect(await t.db.schema.hasTable("uploads")).toBe(false);
    });
  }

  it("migrate in development as before (keys list on an empty database)", async () => {
    t = await freshDatabase("pg", { migrated: false });
    const r = await run("services/api/src/keys-cli.ts", ["list"], { NODE_ENV: "development", DATABASE_URL: (t.settings as { url: string }).url });
    expect(r.code, r.out).toBe(0);
    expect(await t.db.schema.hasTable("uploads")).toBe(true);
  });
});
