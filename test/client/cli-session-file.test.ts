import { spawn } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminUserRepository } from "@intake/db";
import { startApiUnderTest, type ApiUnderTest } from "../api/harness.ts";

/**
 * The attacks on `intake login`'s session file and on where its cookie goes, each as the
 * attacker would set it up: a config directory another user can write to (or one that is a
 * symlink into somewhere else), a symlink planted where the file goes, an API that redirects
 * the CLI to another origin. A child process against the real API, as in cli-admin.test.ts.
 */
const MAIN = resolve(import.meta.dirname, "../../packages/client/src/cli/main.ts");
const PASSWORD = "a long admin password 4 tests";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe("intake's session file and cookie against an attacker", () => {
  let api: ApiUnderTest;
  const home = () => mkdtempSync(join(tmpdir(), "intake-cli-file-"));
  const fileIn = (config: string) => join(config, "intake", "admin-session.json");
  const intake = (config: string, args: string[], o: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> =>
    new Promise((done, fail) => {
      const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, HOME: config, XDG_CONFIG_HOME: config, INTAKE_API_URL: api.url, ...o.env }, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (b: Buffer) => (stdout += b));
      child.stderr.on("data", (b: Buffer) => (stderr += b));
      child.on("error", fail);
      child.on("close", (code) => done({ code, stdout, stderr }));
      child.stdin.end(o.stdin ?? "");
    });
  const login = (config: string, env: Record<string, string> = {}) => intake(config, ["login", "--email", "boss@example.test", "--password-stdin"], { stdin: `${PASSWORD}\n`, env });
  const liveSessions = async () => Number(((await api.database.db("admin_sessions").whereNull("revoked_at").count({ n: "*" })) as { n: number | string }[])[0]!.n);

  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite" });
    await new AdminUserRepository(api.database.db).create({ email: "boss@example.test", name: "Boss", role: "admin", password: PASSWORD });
  });
  afterAll(async () => api?.close());

  it("refuses a config directory other users can write to, before signing in (no session started, no file)", async () => {
    const config = home();
    mkdirSync(join(config, "intake"));
    chmodSync(join(config, "intake"), 0o777);
    const before = await liveSessions();
    const r = await login(config);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("other users can change");
    expect(existsSync(fileIn(config))).toBe(false);
    expect(await liveSessions()).toBe(before);
  });

  it("refuses a session in a directory that became writable by others, or that is a symlink to another directory", async () => {
    const config = home();
    expect((await login(config)).code).toBe(0);
    chmodSync(join(config, "intake"), 0o770);
    const open = await intake(config, ["whoami"]);
    expect(open.code).toBe(1);
    expect(open.stderr).toContain("other users can change");
    chmodSync(join(config, "intake"), 0o700);
    expect((await intake(config, ["whoami"])).code).toBe(0);

    // The directory itself a link into a place someone else picked.
    const elsewhere = home();
    const linked = home();
    symlinkSync(elsewhere, join(linked, "intake"));
    const r = await login(linked);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is not a directory");
    expect(existsSync(join(elsewhere, "admin-session.json"))).toBe(false);
  });

  it("writes through no symlink planted where the file goes, and reads none", async () => {
    const config = home();
    mkdirSync(join(config, "intake"), { mode: 0o700 });
    const victim = join(home(), "victim.txt");
    writeFileSync(victim, "untouched\n");
    symlinkSync(victim, fileIn(config));
    expect((await login(config)).code).toBe(0);
    expect(readFileSync(victim, "utf8")).toBe("untouched\n");
    expect(lstatSync(fileIn(config)).isFile()).toBe(true);

    // A link to a session file someone else wrote (their API, their cookie) is not followed.
    const planted = join(home(), "planted.json");
    writeFileSync(planted, readFileSync(fileIn(config)), { mode: 0o600 });
    const real = `${fileIn(config)}.real`;
    writeFileSync(real, readFileSync(fileIn(config)), { mode: 0o600 });
    const { rmSync } = await import("node:fs");
    rmSync(fileIn(config));
    symlinkSync(planted, fileIn(config));
    const r = await intake(config, ["whoami"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is not a regular file");
  });

  it("reads --password-stdin as one line: a CRLF ending is not part of it, a second line or a stray CR is refused before the API is asked", async () => {
    const config = home();
    const failedBefore = await api.database.db("audit_events").where({ action: "admin.sign_in_failed" }).count({ n: "*" });
    for (const stdin of [`${PASSWORD}\n\n`, `${PASSWORD}\r`, `${PASSWORD}\nsecond`, "\n", ""]) {
      const r = await intake(config, ["login", "--email", "boss@example.test", "--password-stdin"], { stdin });
      expect([JSON.stringify(stdin), r.code]).toEqual([JSON.stringify(stdin), 1]);
      expect(r.stderr + r.stdout).not.toContain(PASSWORD);
    }
    expect(await api.database.db("audit_events").where({ action: "admin.sign_in_failed" }).count({ n: "*" })).toEqual(failedBefore);
    const crlf = await intake(config, ["login", "--email", "boss@example.test", "--password-stdin"], { stdin: `${PASSWORD}\r\n` });
    expect(crlf.code).toBe(0);
  });

  it("never follows a redirect: an API answering 30x to another origin gets no cookie sent there", async () => {
    const config = home();
    expect((await login(config)).code).toBe(0);
    const saved = JSON.parse(readFileSync(fileIn(config), "utf8")) as { token: string; apiUrl: string };
    const seen: IncomingHttpHeaders[] = [];
    const other = createServer((req, res) => (seen.push(req.headers), res.end("{}")));
    await new Promise<void>((ok) => other.listen(0, "127.0.0.1", ok));
    const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    // The session's own API turned hostile (or a proxy in front of it): every answer a redirect.
    const redirecting = createServer((req, res) => {
      res.writeHead(req.method === "GET" ? 302 : 307, { location: `${otherUrl}${req.url}` });
      res.end();
    });
    await new Promise<void>((ok) => redirecting.listen(0, "127.0.0.1", ok));
    const redirectingUrl = `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}`;
    try {
      writeFileSync(fileIn(config), JSON.stringify({ ...saved, apiUrl: redirectingUrl }), { mode: 0o600 });
      for (const args of [["whoami"], ["keys", "list"], ["keys", "create", "--tenant", "t-one", "--name", "x"], ["logout"]]) {
        const r = await intake(config, args, { env: { INTAKE_API_URL: redirectingUrl } });
        expect(r.code, args.join(" ")).not.toBe(0);
        expect(r.stderr + r.stdout, args.join(" ")).not.toContain(saved.token);
      }
      // And a login against an API that redirects sends the password nowhere else.
      const fresh = home();
      expect((await login(fresh, { INTAKE_API_URL: redirectingUrl })).code).not.toBe(0);
      expect(seen).toEqual([]);
    } finally {
      await new Promise((ok) => other.close(ok));
      await new Promise((ok) => redirecting.close(ok));
    }
  });
});
