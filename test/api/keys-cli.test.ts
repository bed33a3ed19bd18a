import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, statSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyRepository, devKeyFromSeed, secretPartOf } from "@intake/db";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "@intake/test";

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, "../../services/api/src/keys-cli.ts");

describe.each(DATABASE_KINDS)("keys CLI on %s", (kind) => {
  let database: TestDatabase;
  let dataDir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    database = await freshDatabase(kind);
    dataDir = mkdtempSync(join(tmpdir(), "intake-keys-"));
    env = {
      PATH: process.env.PATH!,
      DATA_DIR: dataDir,
      ...(database.settings.client === "pg" ? { DATABASE_URL: database.settings.url } : { SQLITE_PATH: database.settings.filename }),
    };
  });
  afterAll(async () => {
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const cli = (args: string[], extra: Record<string, string> = {}) => run(process.execPath, [CLI, ...args], { env: { ...env, ...extra } });

  it("creates a key shown once, lists it without its secret, and revokes it", async () => {
    const created = await cli(["create", "acme", "--name", "ci"]);
    const key = created.stdout.trim();
    expect(key).toMatch(/^ik_live_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/shown once/);
    const keys = new ApiKeyRepository(database.db);
    const caller = await keys.authenticate(key);
    expect(caller?.tenantId).toBe("acme");

    const listed = (await cli(["list", "--tenant", "acme"])).stdout;
    expect(listed).toContain(caller!.keyId);
    expect(listed).toContain("active");
    expect(secretPartOf(key)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(listed).not.toContain(secretPartOf(key));

    await cli(["revoke", caller!.keyId]);
    expect(await keys.authenticate(key)).toBeNull();
    expect((await cli(["list"])).stdout).toMatch(/revoked/);
    await expect(cli(["revoke", "0000000000000000"])).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining("api_key_not_found") });
    await expect(cli(["frobnicate"])).rejects.toMatchObject({ code: 64 });
  });

  it("ensure-dev prints the same development key every time, kept in DATA_DIR with mode 600", async () => {
    const first = (await cli(["ensure-dev"])).stdout;
    const second = (await cli(["ensure-dev"])).stdout;
    expect(first).toMatch(/^ik_dev_[a-z0-9]{16}_[A-Za-z0-9_-]{43}\n$/);
    expect(second).toBe(first);
    const file = join(dataDir, "dev-api-key");
    expect(readFileSync(file, "utf8")).toBe(first);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await new ApiKeyRepository(database.db).authenticate(first.trim()))?.tenantId).toBe("dev");
  });

  it("ensure-dev pins the key to DEV_API_KEY when set", async () => {
    const out = (await cli(["ensure-dev"], { DEV_API_KEY: "my-dev-seed-123" })).stdout.trim();
    // The key is the string the operator set, so scripts can send it as is.
    expect(out).toBe("my-dev-seed-123");
    expect(out).toBe((await cli(["ensure-dev"], { DEV_API_KEY: "my-dev-seed-123" })).stdout.trim());
    const keys = new ApiKeyRepository(database.db);
    expect((await keys.authenticate("my-dev-seed-123"))?.tenantId).toBe("dev");
    // Only its derived form is stored, and it authenticates too; a different string does not.
    expect((await keys.authenticate(devKeyFromSeed("my-dev-seed-123")))?.tenantId).toBe("dev");
    expect(await keys.authenticate("my-dev-seed-124")).toBeNull();
  });

  it("needs nothing but the database settings: no S3, SQS or clamd variables", async () => {
    const dbOnly = database.settings.client === "pg" ? { DATABASE_URL: database.settings.url } : { SQLITE_PATH: database.settings.filename };
    const listed = await run(process.execPath, [CLI, "list"], { env: { PATH: process.env.PATH!, ...dbOnly } });
    expect(listed.stdout).toMatch(/^KEY ID\s+TENANT/);
  });

  it("refuses an unknown flag with a usage error", async () => {
    await expect(cli(["list", "--tenat", "acme"])).rejects.toMatchObject({ code: 64, stderr: expect.stringContaining("--tenat") });
  });

  it("names a bad environment variable and exits non-zero", async () => {
    await expect(cli(["list"], { DATABASE_URL: "mysql://nope" })).rejects.toMatchObject({ code: 78, stderr: expect.stringContaining("DATABASE_URL") });
  });
});
