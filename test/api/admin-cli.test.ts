import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, readFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminUserRepository, AuditLog } from "@intake/db";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "@intake/test";

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, "../../services/api/src/admin-cli.ts");

describe.each(DATABASE_KINDS)("admin CLI on %s", (kind) => {
  let database: TestDatabase;
  let dataDir: string;
  let env: Record<string, string>;
  let users: AdminUserRepository;
  beforeAll(async () => {
    database = await freshDatabase(kind);
    dataDir = mkdtempSync(join(tmpdir(), "intake-admin-cli-"));
    env = { PATH: process.env.PATH!, DATA_DIR: dataDir, ...(database.settings.client === "pg" ? { DATABASE_URL: database.settings.url } : { SQLITE_PATH: database.settings.filename }) };
    users = new AdminUserRepository(database.db);
  });
  afterAll(async () => {
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const cli = (args: string[]) => run(process.execPath, [CLI, ...args], { env });
  /** With a password on standard input. */
  const cliWithStdin = (args: string[], input: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const p = spawn(process.execPath, [CLI, ...args], { env });
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d) => (stdout += d));
      p.stderr.on("data", (d) => (stderr += d));
      p.on("close", (code) => done({ code, stdout, stderr }));
      p.stdin.end(input);
    });

  it("creates the first admin with a generated password printed once, which checks", async () => {
    const r = await cli(["create", "--email", "first@example.test", "--role", "admin", "--name", "First"]);
    const password = r.stdout.trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(r.stderr).toMatch(/shown once/);
    expect(await users.checkPassword("first@example.test", password)).toMatchObject({ role: "admin", name: "First" });
    const row = (await new AuditLog(database.db).byAction("admin.user_created"))[0]!;
    expect(row).toMatchObject({ actor: "cli" });
    expect(JSON.stringify(row)).not.toContain(password);
  });

  it("reads a password from standard input, limits tenants, lists without secrets, disables and resets", async () => {
    const r = await cliWithStdin(["create", "--email", "rev@example.test", "--role", "compliance", "--tenants", "acme,globex", "--password-stdin"], "a chosen password here\n");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(await users.checkPassword("rev@example.test", "a chosen password here")).toMatchObject({ tenantIds: ["acme", "globex"] });
    const weak = await cliWithStdin(["create", "--email", "weak@example.test", "--role", "operator", "--password-stdin"], "short\n");
    expect(weak.code).toBe(1);
    expect(weak.stderr).toContain("weak_password");

    const listed = (await cli(["list"])).stdout;
    expect(listed).toMatch(/rev@example\.test\s+compliance\s+acme,globex\s+password\s+never\s+active/);
    expect(listed).not.toContain("scrypt");

    await cli(["disable", "--email", "rev@example.test"]);
    expect(await users.checkPassword("rev@example.test", "a chosen password here")).toBeNull();
    expect((await cli(["list"])).stdout).toMatch(/rev@example\.test.*disabled/);
    await cli(["enable", "--email", "rev@example.test"]);
    const reset = await cli(["set-password", "--email", "rev@example.test"]);
    expect(await users.checkPassword("rev@example.test", reset.stdout.trim())).not.toBeNull();
    expect(await users.checkPassword("rev@example.test", "a chosen password here")).toBeNull();
  });

  it("refuses bad usage with exit 64 and unknown accounts with exit 1", async () => {
    for (const args of [["frobnicate"], ["create", "--email", "x@example.test"], ["create", "--email", "x@example.test", "--role", "root"], ["disable"], ["create", "--bogus"]]) {
      await expect(cli(args), args.join(" ")).rejects.toMatchObject({ code: 64 });
    }
    await expect(cli(["disable", "--email", "ghost@example.test"])).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining("admin_user_not_found") });
    await expect(cli(["create", "--email", "first@example.test", "--role", "admin"])).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining("admin_user_exists") });
  });

  it("ensure-dev creates the dev stack's admin once, password in DATA_DIR/dev-admin.txt with mode 600", async () => {
    const first = (await cli(["ensure-dev"])).stdout;
    const password = /^password (\S+)\s+\(shown once/m.exec(first)![1]!;
    const file = join(dataDir, "dev-admin.txt");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toContain(`password: ${password}`);
    expect(await users.checkPassword("admin@intake.localhost", password)).toMatchObject({ role: "admin" });
    const second = (await cli(["ensure-dev"])).stdout;
    expect(second).toBe(`email admin@intake.localhost\npassword in ${file}\n`);
    expect(second).not.toContain(password);
    unlinkSync(file);
    expect((await cli(["ensure-dev"])).stdout).toMatch(/password unknown .*set-password --email admin@intake\.localhost/);
    expect(await users.checkPassword("admin@intake.localhost", password)).not.toBeNull();
  });
});
