import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminUserRepository, AuditLog } from "@intake/db";
import { objectKey } from "@intake/domain";
import { freePort } from "@intake/testkit";
import { startApiUnderTest, type ApiUnderTest } from "../api/harness.ts";

/**
 * The `intake` CLI's admin commands as an admin runs them: a child process (node
 * packages/client/src/cli/main.ts) against the real API (startApi on SQLite and fauxqs),
 * signing in with a password through POST /v1/admin/session and keeping the session in a
 * file under its own XDG_CONFIG_HOME. Admins are real rows with real passwords.
 */
const MAIN = resolve(import.meta.dirname, "../../packages/client/src/cli/main.ts");
const PASSWORD = "a long admin password 4 tests";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe("intake login, keys, admin, quarantine (child process, real API)", () => {
  let api: ApiUnderTest;
  let users: AdminUserRepository;
  const runs: Run[] = [];
  const secrets: string[] = [PASSWORD];
  /** Cookie tokens and CSRF tokens of the sessions the tests made. */
  const sessionSecrets: string[] = [];

  /** A fresh config directory: each admin of a test keeps a session file of their own. */
  const home = () => mkdtempSync(join(tmpdir(), "intake-cli-admin-"));
  const fileIn = (config: string) => join(config, "intake", "admin-session.json");
  const intake = (config: string, args: string[], o: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> =>
    new Promise((done, fail) => {
      const child = spawn(process.execPath, [MAIN, ...args], {
        env: { PATH: process.env.PATH, HOME: config, XDG_CONFIG_HOME: config, INTAKE_API_URL: api.url, ...o.env },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (b: Buffer) => (stdout += b));
      child.stderr.on("data", (b: Buffer) => (stderr += b));
      child.on("error", fail);
      child.on("close", (code) => {
        const r = { code, stdout, stderr };
        runs.push(r);
        done(r);
      });
      child.stdin.end(o.stdin ?? "");
    });
  const login = (config: string, email: string, password = PASSWORD) => intake(config, ["login", "--email", email, "--password-stdin"], { stdin: `${password}\n` });
  const saved = (config: string) => {
    const s = JSON.parse(readFileSync(fileIn(config), "utf8")) as { token: string; csrfToken: string; apiUrl: string };
    sessionSecrets.push(s.token, s.csrfToken);
    return s;
  };
  const sessionAnswer = (s: { token: string }) => fetch(`${api.url}/v1/admin/session`, { headers: { cookie: `intake_admin=${s.token}` } });

  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", logLevel: "debug" });
    users = new AdminUserRepository(api.database.db);
    await users.create({ email: "boss@example.test", name: "Boss", role: "admin", password: PASSWORD });
    await users.create({ email: "op@example.test", name: "Op", role: "operator", password: PASSWORD });
    await users.create({ email: "rev@example.test", name: "Rev", role: "compliance", tenantIds: ["t-one"], password: PASSWORD });
    await api.keys.create("t-one", "seed");
  });
  afterAll(async () => {
    // Nothing secret reached the CLI's output or the API's log, whatever the test did.
    const out = runs.map((r) => r.stdout + r.stderr).join("\n");
    const log = api?.logs.join("\n") ?? "";
    for (const s of secrets) {
      expect(log, "a secret in the API log").not.toContain(s);
    }
    // Keys and generated passwords are printed once on purpose; session tokens never are.
    for (const s of sessionSecrets) expect(out, "a session secret in the CLI's output").not.toContain(s);
    expect(out).not.toContain(PASSWORD);
    await api?.close();
  });

  it("refuses a wrong password with exit 2 and the API's code, and writes no session file", async () => {
    const config = home();
    const r = await login(config, "boss@example.test", "not the password at all");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("[invalid_credentials]");
    expect(r.stderr).toContain("the email address or the password is wrong");
    expect(existsSync(fileIn(config))).toBe(false);
    // An unknown account answers the same.
    const unknown = await login(config, "nobody@example.test");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("[invalid_credentials]");
    expect(existsSync(fileIn(config))).toBe(false);
  });

  it("asks for nothing it cannot ask for: no --email and no terminal, or no --password-stdin and no terminal, is a usage error", async () => {
    const config = home();
    expect((await intake(config, ["login", "--password-stdin"], { stdin: `${PASSWORD}\n` })).code).toBe(1);
    const noTty = await intake(config, ["login", "--email", "boss@example.test"]);
    expect(noTty.code).toBe(1);
    expect(noTty.stderr).toContain("--password-stdin");
    expect((await intake(config, ["login", "--email", "boss@example.test", "--password-stdin"], { stdin: "two\nlines\n" })).code).toBe(1);
    expect(existsSync(fileIn(config))).toBe(false);
  });

  it("signs in, keeps the session in a 0600 file in a 0700 directory, and creates a key that works against /v1/uploads until revoked", async () => {
    const config = home();
    const signedIn = await login(config, "boss@example.test");
    expect(signedIn.stderr).toBe("");
    expect(signedIn.code).toBe(0);
    expect(signedIn.stdout).toContain("signed in as boss@example.test (admin, all tenants)");
    expect(statSync(fileIn(config)).mode & 0o777).toBe(0o600);
    expect(statSync(join(config, "intake")).mode & 0o777).toBe(0o700);
    const s = saved(config);
    secrets.push(s.token, s.csrfToken);
    expect(s.apiUrl).toBe(api.url);

    const who = await intake(config, ["whoami", "--json"]);
    expect(who.code).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ admin: { email: "boss@example.test", role: "admin" }, apiUrl: api.url });

    const created = await intake(config, ["keys", "create", "--tenant", "t-one", "--name", "from the cli"]);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^ik_live_\S+$/);
    expect(created.stderr).toContain("shown once");
    expect(created.stderr).not.toContain(key);
    secrets.push(key);
    const upload = await api.call("POST", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 68 } });
    expect(upload.status).toBe(201);
    expect((await api.call("GET", "/v1/uploads?limit=5", { key })).status).toBe(200);

    const listed = await intake(config, ["keys", "list", "--tenant", "t-one", "--json"]);
    expect(listed.code).toBe(0);
    const mine = listed.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((k) => k.name === "from the cli");
    expect(mine).toMatchObject({ tenantId: "t-one", revokedAt: null });
    expect(listed.stdout).not.toContain(key);

    const revoked = await intake(config, ["keys", "revoke", mine.id]);
    expect(revoked.code).toBe(0);
    // A running API remembers a good key for up to 5 s (server.ts AUTH_CACHE_TTL_MS): the
    // revoked key stops working within that window, not necessarily on the next request.
    const deadline = Date.now() + 15_000;
    while ((await api.call("GET", "/v1/uploads?limit=5", { key })).status !== 401) {
      if (Date.now() > deadline) throw new Error("the revoked key still worked 15 s after keys revoke");
      await new Promise((r) => setTimeout(r, 250));
    }
    expect((await api.call("POST", "/v1/uploads", { key, body: { filename: "b.png", contentType: "image/png", size: 68 } })).status).toBe(401);
    // Twice: the API's 404, exit 2.
    const again = await intake(config, ["keys", "revoke", mine.id]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("[api_key_not_found]");
  });

  it("refuses an operator's key creation with exit 2 and the API's code, and creates nothing", async () => {
    const config = home();
    expect((await login(config, "op@example.test")).code).toBe(0);
    secrets.push(saved(config).token, saved(config).csrfToken);
    const r = await intake(config, ["keys", "create", "--tenant", "t-one", "--name", "operator's key"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("[forbidden]");
    expect(r.stderr).toContain("operator role may not");
    // A role refusal is not an ended session.
    expect(r.stderr).not.toContain("intake login");
    expect((await api.keys.list("t-one")).map((k) => k.name)).not.toContain("operator's key");
  });

  it("logs out: the session ends on the server (its cookie answers 401), the file is deleted, an audit row is written", async () => {
    const config = home();
    expect((await login(config, "boss@example.test")).code).toBe(0);
    const s = saved(config);
    secrets.push(s.token, s.csrfToken);
    expect((await sessionAnswer(s)).status).toBe(200);
    const out = await intake(config, ["logout"]);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`signed out of ${api.url}`);
    expect(existsSync(fileIn(config))).toBe(false);
    expect((await sessionAnswer(s)).status).toBe(401);
    const boss = (await users.byEmail("boss@example.test"))!;
    expect((await new AuditLog(api.database.db).byAction("admin.signed_out")).some((r) => r.actorId === boss.id)).toBe(true);
    // Afterwards: not signed in (exit 1), and logout again has nothing to do.
    expect((await intake(config, ["keys", "list"])).code).toBe(1);
    expect((await intake(config, ["logout"])).code).toBe(0);
  });

  it("says to run intake login again when the session has ended on the server (exit 2)", async () => {
    const config = home();
    expect((await login(config, "boss@example.test")).code).toBe(0);
    const s = saved(config);
    secrets.push(s.token, s.csrfToken);
    // Ended elsewhere: signed out from another client with the same session.
    expect((await fetch(`${api.url}/v1/admin/session`, { method: "DELETE", headers: { cookie: `intake_admin=${s.token}`, "x-csrf-token": s.csrfToken } })).status).toBe(204);
    const r = await intake(config, ["keys", "list"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("[unauthenticated]");
    expect(r.stderr).toContain("run `intake login` again");
    // logout still cleans up the file.
    const out = await intake(config, ["logout"]);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain("had already ended");
    expect(existsSync(fileIn(config))).toBe(false);
  });

  it("refuses a session file others can read, and never sends the cookie to another API URL than its own", async () => {
    const config = home();
    expect((await login(config, "boss@example.test")).code).toBe(0);
    const s = saved(config);
    secrets.push(s.token, s.csrfToken);
    // Another URL (a listener that would record the cookie if it were sent).
    const port = await freePort();
    const seen: string[] = [];
    const { createServer } = await import("node:http");
    const trap = createServer((req, res) => (seen.push(String(req.headers.cookie)), res.end("{}")));
    await new Promise<void>((ok) => trap.listen(port, "127.0.0.1", ok));
    try {
      const r = await intake(config, ["keys", "list"], { env: { INTAKE_API_URL: `http://127.0.0.1:${port}` } });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`the saved admin session is for ${api.url}`);
      expect(seen).toEqual([]);
    } finally {
      await new Promise((ok) => trap.close(ok));
    }
    chmodSync(fileIn(config), 0o644);
    const open = await intake(config, ["keys", "list"]);
    expect(open.code).toBe(1);
    expect(open.stderr).toContain("can be read by other users");
    chmodSync(fileIn(config), 0o600);
    expect((await intake(config, ["keys", "list"])).code).toBe(0);
  });

  it("manages admin users and tenants one route to one command, with --json", async () => {
    const config = home();
    expect((await login(config, "boss@example.test")).code).toBe(0);
    secrets.push(saved(config).token, saved(config).csrfToken);
    const tenant = await intake(config, ["admin", "tenants", "create", "t-two", "--name", "Two", "--json"]);
    expect(tenant.code).toBe(0);
    expect(JSON.parse(tenant.stdout)).toMatchObject({ id: "t-two", name: "Two" });
    const dup = await intake(config, ["admin", "tenants", "create", "t-two"]);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain("[tenant_exists]");
    const tenants = await intake(config, ["admin", "tenants", "list"]);
    expect(tenants.stdout).toMatch(/^t-two\s+\S+\s+Two$/m);

    const made = await intake(config, ["admin", "users", "create", "--email", "New@Example.test", "--role", "compliance", "--tenants", "t-one,t-two", "--json"]);
    expect(made.code).toBe(0);
    const body = JSON.parse(made.stdout);
    expect(body.user).toMatchObject({ email: "new@example.test", role: "compliance", tenantIds: ["t-one", "t-two"] });
    expect(body.password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    secrets.push(body.password);
    // The generated password works with intake login.
    const other = home();
    expect((await login(other, "new@example.test", body.password)).code).toBe(0);
    secrets.push(saved(other).token, saved(other).csrfToken);

    const role = await intake(config, ["admin", "users", "set-role", "new@example.test", "operator", "--json"]);
    expect(role.code).toBe(0);
    expect(JSON.parse(role.stdout)).toMatchObject({ role: "operator" });
    // Their role changed: their session ended, and the CLI says so.
    const ended = await intake(other, ["whoami"]);
    expect(ended.code).toBe(2);
    expect(ended.stderr).toContain("run `intake login` again");
    expect(JSON.parse((await intake(config, ["admin", "users", "set-tenants", body.user.id, "*", "--json"])).stdout)).toMatchObject({ tenantIds: null });
    expect((await intake(config, ["admin", "users", "disable", body.user.id])).stdout).toContain("disabled");
    expect((await login(home(), "new@example.test", body.password)).code).toBe(2);
    expect((await intake(config, ["admin", "users", "enable", "new@example.test"])).code).toBe(0);
    const list = await intake(config, ["admin", "users", "list", "--json"]);
    const rows = list.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(rows.find((u) => u.email === "new@example.test")).toMatchObject({ role: "operator", tenantIds: null, disabledAt: null });
    expect(list.stdout).not.toContain(body.password);

    // The API's refusals keep their codes; commander's own refuse bad roles before sending.
    const self = await intake(config, ["admin", "users", "disable", "boss@example.test"]);
    expect(self.code).toBe(2);
    expect(self.stderr).toContain("[own_access]");
    expect((await intake(config, ["admin", "users", "set-role", "new@example.test", "root"])).code).toBe(1);
    expect((await intake(config, ["admin", "users", "create", "--email", "x@example.test", "--role", "root"])).code).toBe(1);
    // A limited reviewer may not manage users at all.
    const rev = home();
    expect((await login(rev, "rev@example.test")).code).toBe(0);
    secrets.push(saved(rev).token, saved(rev).csrfToken);
    const refused = await intake(rev, ["admin", "users", "list"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("[forbidden]");
  });

  it("lists the quarantine review with its filters, within the reviewer's tenant scope", async () => {
    const seed = async (tenant: string, reason: "malware" | "type_mismatch", finishedAt: string) => {
      const id = `up_${randomBytes(8).toString("hex")}`;
      const end = new Date(finishedAt);
      const at = (ms: number) => new Date(end.getTime() - ms);
      await api.keys.create(tenant, "seed");
      await api.uploads.create({ id, tenantId: tenant, filename: `${reason}.pdf`, declaredType: "application/pdf", declaredSize: 68, metadata: {}, objectKey: objectKey("pending", tenant, id), multipart: null, urlExpiresAt: at(-600_000) } as never, at(4000));
      const steps = [
        ["arrived", "ingest", { storedSize: 68 }, at(3000)],
        ["inspect", "inspect", { sniffedType: "application/pdf" }, at(2000)],
        ["decide", "scan", { verdict: "quarantine", reason, reasonDetail: `${reason} found`, signature: reason === "malware" ? "Eicar-Test-Signature" : null, scannerVersion: "ClamAV test", sha256: "ab".repeat(32) }, at(1000)],
        ["quarantine", "finalize", { finalKey: objectKey("quarantine", tenant, id) }, end],
      ] as const;
      for (const [event, actor, findings, when] of steps) expect((await api.uploads.transition(id, event, actor, findings as never, when)).applied).toBe(true);
      return id;
    };
    const inScope = await seed("t-one", "malware", "2026-11-20T10:00:00.000Z");
    const otherReason = await seed("t-one", "type_mismatch", "2026-11-22T10:00:00.000Z");
    const outOfScope = await seed("t-three", "malware", "2026-11-21T10:00:00.000Z");

    const rev = home();
    expect((await login(rev, "rev@example.test")).code).toBe(0);
    secrets.push(saved(rev).token, saved(rev).csrfToken);
    const all = await intake(rev, ["quarantine", "list", "--json"]);
    expect(all.code).toBe(0);
    const ids = all.stdout.trim().split("\n").map((l) => JSON.parse(l).id);
    expect(ids).toEqual([otherReason, inScope]);
    const malware = await intake(rev, ["quarantine", "list", "--reason", "malware", "--since", "2026-11-20", "--until", "2026-11-20"]);
    expect(malware.code).toBe(0);
    expect(malware.stdout).toContain(inScope);
    expect(malware.stdout).not.toContain(otherReason);
    expect(malware.stdout).not.toContain(outOfScope);
    // Paging: one at a time, the cursor on stderr.
    const first = await intake(rev, ["quarantine", "list", "--limit", "1"]);
    const cursor = /--cursor (\S+)/.exec(first.stderr)![1]!;
    expect((await intake(rev, ["quarantine", "list", "--limit", "1", "--cursor", cursor])).stdout).toContain(inScope);
    // The API's own refusal (a day that does not exist) keeps its code; a malformed one is commander's.
    const bad = await intake(rev, ["quarantine", "list", "--since", "2026-02-30"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("[invalid_filter]");
    expect((await intake(rev, ["quarantine", "list", "--since", "yesterday"])).code).toBe(1);
    // An operator is refused the review.
    const op = home();
    expect((await login(op, "op@example.test")).code).toBe(0);
    secrets.push(saved(op).token, saved(op).csrfToken);
    expect((await intake(op, ["quarantine", "list"])).stderr).toContain("[forbidden]");
  });

  it("asks for the password on a terminal with the echo off (util-linux script gives it a pseudo-terminal)", async () => {
    const config = home();
    const line = [process.execPath, MAIN, "login", "--email", "boss@example.test"].map((x) => `'${x}'`).join(" ");
    const r = await new Promise<Run>((done, fail) => {
      const child = spawn("script", ["-qec", line, "/dev/null"], { env: { PATH: process.env.PATH, TERM: "xterm", HOME: config, XDG_CONFIG_HOME: config, INTAKE_API_URL: api.url }, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let typed = false;
      child.stdout.on("data", (b: Buffer) => {
        stdout += b;
        // Typed once the prompt is up, as a person would, with a typo corrected by backspace.
        // Written, not ended: script passes an end of its input on to the terminal as EOF,
        // which could reach the prompt before the typed line does.
        if (!typed && stdout.includes("Password for boss@example.test: ")) {
          typed = true;
          child.stdin.write(`${PASSWORD}x\u007f\r`);
        }
      });
      child.on("error", fail);
      child.on("close", (code) => {
        child.stdin.destroy();
        done({ code, stdout, stderr: "" });
      });
    });
    runs.push(r);
    expect(r.stdout).toContain("signed in as boss@example.test");
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(PASSWORD);
    expect(statSync(fileIn(config)).mode & 0o777).toBe(0o600);
    saved(config);
  });

  it("explains, where OIDC sign-in is offered, that an OIDC-only account cannot use intake login", async () => {
    const sso = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { OIDC_ISSUER: "http://127.0.0.1:9/issuer", OIDC_CLIENT_ID: "intake", OIDC_REDIRECT_URL: "http://127.0.0.1:9/admin/oidc/callback", OIDC_ALLOW_INSECURE: "true" } });
    try {
      await new AdminUserRepository(sso.database.db).create({ email: "sso@example.test", name: "SSO", role: "admin" });
      const config = home();
      const r = await intake(config, ["login", "--email", "sso@example.test", "--password-stdin"], { stdin: `${PASSWORD}\n`, env: { INTAKE_API_URL: sso.url } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("[invalid_credentials]");
      expect(r.stderr).toContain("single sign-on (OIDC) has no password");
      expect(r.stderr).toContain(`${sso.url}/admin`);
      expect(existsSync(fileIn(config))).toBe(false);
    } finally {
      await sso.close();
    }
  });

  it("points audit verify at the server-side command (the admin API does not expose it)", async () => {
    const r = await intake(home(), ["audit", "verify", "--anchor", "1:abc"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("npm run audit -- verify");
  });

  it("has --help on every admin command", async () => {
    const config = home();
    for (const cmd of [["login"], ["logout"], ["whoami"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"], ["admin", "users", "list"], ["admin", "users", "create"], ["admin", "users", "set-role"], ["admin", "users", "disable"], ["admin", "tenants", "create"], ["quarantine", "list"], ["audit", "verify"]]) {
      const r = await intake(config, [...cmd, "--help"]);
      expect(r.code, cmd.join(" ")).toBe(0);
      expect(r.stdout, cmd.join(" ")).toContain(`Usage: intake ${cmd.join(" ")}`);
      expect(r.stdout).not.toMatch(/\u001b\[/);
    }
  });
});
