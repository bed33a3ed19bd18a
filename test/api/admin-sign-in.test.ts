import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminSessionRepository, AdminUserRepository, AuditLog } from "@intake/db";
import { DATABASE_KINDS } from "@intake/test";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";
import { CookieClient, fieldOf, signInWithPassword } from "./admin-browser.ts";

/**
 * Password sign-in through the real form (no JavaScript: a page, a pre-session CSRF token,
 * a POST), its cookie, where it sends you next, sign-out, and what ends a session.
 */
const PASSWORD = "correct horse battery staple";

describe.each(DATABASE_KINDS)("admin password sign-in on %s", (kind) => {
  let api: ApiUnderTest;
  let users: AdminUserRepository;
  let sessions: AdminSessionRepository;
  let audit: AuditLog;
  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: kind, logLevel: "debug", env: { ADMIN_LOGIN_FAILURES_PER_ACCOUNT: "50", ADMIN_LOGIN_FAILURES_PER_ADDRESS: "200" } });
    users = new AdminUserRepository(api.database.db);
    sessions = new AdminSessionRepository(api.database.db);
    audit = new AuditLog(api.database.db);
    await users.create({ email: "ana@example.test", name: "Ana", role: "admin", password: PASSWORD });
  });
  afterAll(async () => api?.close());

  it("serves a sign-in form that works without JavaScript, with a pre-session token in an HttpOnly SameSite=Strict cookie", async () => {
    const c = new CookieClient();
    const page = await c.get(`${api.url}/admin/login`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    expect(page.text).toContain('<form method="post" action="/admin/login">');
    expect(page.text).not.toContain("<script");
    const token = fieldOf(page.text, "_csrf");
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(c.cookie(api.url, "intake_login")).toBe(token);
    const sc = c.setCookies.find((s) => s.startsWith("intake_login="))!;
    expect(sc).toMatch(/httponly/i);
    expect(sc).toMatch(/samesite=strict/i);
    expect(sc).toMatch(/path=\/admin\/login/i);
  });

  it("signs in with the right password: a session cookie (HttpOnly, SameSite=Strict, Path=/, session TTL, not Secure without TLS), last login and an audit row", async () => {
    const c = new CookieClient();
    const before = Date.now();
    const res = await signInWithPassword(c, api.url, "ANA@example.test", PASSWORD, { next: "/admin/users?x=1" });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/users?x=1");
    const sc = c.setCookies.find((s) => s.startsWith("intake_admin="))!;
    expect(sc).toMatch(/httponly/i);
    expect(sc).toMatch(/samesite=strict/i);
    expect(sc).toMatch(/path=\/(;|$)/i);
    expect(sc).not.toMatch(/secure/i);
    const expires = Date.parse(/expires=([^;]+)/i.exec(sc)![1]!);
    expect(Math.abs(expires - (before + api.config.admin.sessionTtlSeconds * 1000))).toBeLessThan(10_000);
    const users2 = await c.get(`${api.url}/v1/admin/users`, { accept: "application/json" });
    expect(users2.status).toBe(200);
    expect(JSON.parse(users2.text).users.map((u: { email: string }) => u.email)).toContain("ana@example.test");
    const home = await c.get(`${api.url}/admin`);
    expect(home.status).toBe(200);
    expect(home.text).toContain('href="/admin/users"');
    const ana = (await users.byEmail("ana@example.test"))!;
    expect(ana.lastLoginAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    const row = (await audit.byAction("admin.signed_in"))[0]!;
    expect(row).toMatchObject({ actor: "admin", detail: { method: "password" } });
    expect(row.actorId ?? ana.id).toBe(ana.id);
  });

  it("gives a wrong password and an unknown account the same answer, both after a full password check", async () => {
    const timed = async (email: string) => {
      const c = new CookieClient();
      const t0 = performance.now();
      const r = await signInWithPassword(c, api.url, email, "not the password at all");
      return { status: r.status, ms: performance.now() - t0, message: /<div class="error"[^>]*>([^<]*)</.exec(r.text)?.[1], cookie: c.cookie(api.url, "intake_admin") };
    };
    const wrong = await timed("ana@example.test");
    const unknown = await timed("nobody@example.test");
    expect(wrong).toMatchObject({ status: 401, cookie: undefined });
    expect(unknown).toMatchObject({ status: 401, cookie: undefined, message: wrong.message });
    // scrypt (N=2^15) takes tens of milliseconds; a lookup that skipped it would take ~1 ms.
    expect(unknown.ms).toBeGreaterThan(15);
    expect(unknown.ms / wrong.ms).toBeGreaterThan(0.4);
    const failures = await audit.byAction("admin.sign_in_failed");
    expect(failures.map((f) => f.detail.email)).toEqual(expect.arrayContaining(["ana@example.test", "nobody@example.test"]));
  });

  it("refuses a disabled account and an OIDC-only account with the same answer", async () => {
    const d = await users.create({ email: "dis@example.test", role: "operator", password: PASSWORD });
    await users.update(d.id, { disabled: true });
    await users.create({ email: "sso@example.test", role: "operator", oidc: { issuer: "https://idp.example", subject: "s1" } });
    for (const email of ["dis@example.test", "sso@example.test"]) {
      const res = await signInWithPassword(new CookieClient(), api.url, email, PASSWORD);
      expect(res.status, email).toBe(401);
    }
  });

  it.each([
    ["//evil.example/x", "/admin"],
    ["/\\evil.example", "/admin"],
    ["https://evil.example/", "/admin"],
    ["javascript:alert(1)", "/admin"],
    ["/%2F%2Fevil.example", "/%2F%2Fevil.example"],
    ["/admin/quarantine?tenant=a&x=1", "/admin/quarantine?tenant=a&x=1"],
    [" /admin", "/admin"],
  ])("sends next=%j to %j after sign-in (no open redirect)", async (next, expected) => {
    const c = new CookieClient();
    const page = await c.get(`${api.url}/admin/login`);
    const res = await c.request("POST", `${api.url}/admin/login`, { form: { _csrf: fieldOf(page.text, "_csrf")!, email: "ana@example.test", password: PASSWORD, next } });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(expected);
  });

  it("refuses a sign-in post without the pre-session token, with another token, or from another site (403 csrf_failed)", async () => {
    const c = new CookieClient();
    const page = await c.get(`${api.url}/admin/login`);
    const token = fieldOf(page.text, "_csrf")!;
    const post = (form: Record<string, string>, headers: Record<string, string> = {}) => c.request("POST", `${api.url}/admin/login`, { form: { email: "ana@example.test", password: PASSWORD, ...form }, headers });
    const cases = [
      await post({}),
      await post({ _csrf: "A".repeat(32) }),
      await post({ _csrf: token }, { origin: "https://evil.example" }),
      await post({ _csrf: token }, { "sec-fetch-site": "cross-site" }),
      // A token without its cookie (another browser's page): the attacker's own token.
      await new CookieClient().request("POST", `${api.url}/admin/login`, { form: { _csrf: token, email: "ana@example.test", password: PASSWORD } }),
    ];
    for (const [i, r] of cases.entries()) {
      expect(r.status, `case ${i}`).toBe(403);
      expect(r.text).toContain('data-code="csrf_failed"');
    }
    expect(c.cookie(api.url, "intake_admin")).toBeUndefined();
    const json = await fetch(`${api.url}/admin/login`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" }, body: "email=a&password=b" });
    expect(json.status).toBe(403);
  });

  it("refuses a tenant API key on the sign-in routes", async () => {
    const key = await api.newKey("acme");
    const res = await fetch(`${api.url}/admin/login`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: "api_key_not_allowed" } });
  });

  it("signs out (with the session's CSRF token only): the session ends, the cookie is cleared, an audit row", async () => {
    const c = new CookieClient();
    await signInWithPassword(c, api.url, "ana@example.test", PASSWORD);
    const token = c.cookie(api.url, "intake_admin")!;
    const home = await c.get(`${api.url}/admin`);
    const csrf = fieldOf(home.text, "_csrf")!;
    const noToken = await c.request("POST", `${api.url}/admin/logout`, { form: {} });
    expect(noToken.status).toBe(403);
    const cross = await c.request("POST", `${api.url}/admin/logout`, { form: { _csrf: csrf }, headers: { origin: "https://evil.example" } });
    expect(cross.status).toBe(403);
    const out = await c.request("POST", `${api.url}/admin/logout`, { form: { _csrf: csrf } });
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/admin/login");
    expect(c.cookie(api.url, "intake_admin")).toBeUndefined();
    const after = await fetch(`${api.url}/v1/admin/users`, { headers: { cookie: `intake_admin=${token}` } });
    expect(after.status).toBe(401);
    expect((await audit.byAction("admin.signed_out")).length).toBeGreaterThan(0);
  });

  it("ends sessions that expired, sat idle too long, were revoked, or whose user was disabled or changed role", async () => {
    const u = await users.create({ email: "sess@example.test", role: "admin", password: PASSWORD });
    const ok = (token: string) => fetch(`${api.url}/v1/admin/users`, { headers: { cookie: `intake_admin=${token}` } }).then((r) => r.status);
    const ttl = api.config.admin.sessionTtlSeconds;
    const idle = api.config.admin.sessionIdleSeconds;
    const expired = await sessions.start(u.id, "password", ttl, new Date(Date.now() - ttl * 1000 - 1000));
    expect(await ok(expired.token)).toBe(401);
    const idleOne = await sessions.start(u.id, "password", ttl + idle * 2, new Date(Date.now() - idle * 1000 - 1000));
    expect(await ok(idleOne.token)).toBe(401);
    const revoked = await sessions.start(u.id, "password", ttl);
    expect(await ok(revoked.token)).toBe(200);
    await sessions.revoke(revoked.token);
    expect(await ok(revoked.token)).toBe(401);
    const demoted = await sessions.start(u.id, "password", ttl);
    await users.update(u.id, { role: "operator" });
    expect(await ok(demoted.token)).toBe(401);
    const disabled = await sessions.start(u.id, "password", ttl);
    await users.update(u.id, { disabled: true });
    expect(await ok(disabled.token)).toBe(401);
    expect(await ok("not-a-real-session-token-at-all-xxxx")).toBe(401);
  });

  it("never writes a password, a session token or a CSRF token to the log", async () => {
    const c = new CookieClient();
    await signInWithPassword(c, api.url, "ana@example.test", PASSWORD);
    await signInWithPassword(new CookieClient(), api.url, "ana@example.test", "a wrong password 12345");
    const session = c.cookie(api.url, "intake_admin")!;
    const log = api.logs.join("\n");
    expect(log).toContain("admin signed in");
    for (const secret of [PASSWORD, "a wrong password 12345", session, fieldOf((await c.get(`${api.url}/admin`)).text, "_csrf")!]) expect(log).not.toContain(secret);
  });
});

describe("admin session cookie behind TLS", () => {
  let api: ApiUnderTest;
  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { PUBLIC_URL: "https://intake.example", TRUSTED_PROXY_HOPS: "1" } });
    await new AdminUserRepository(api.database.db).create({ email: "tls@example.test", role: "operator", password: PASSWORD });
  });
  afterAll(async () => api?.close());

  it("is Secure (PUBLIC_URL https), through a TLS-terminating proxy and even when the hop says plain http", async () => {
    for (const proto of ["https", "http"]) {
      const c = new CookieClient({ "x-forwarded-proto": proto, "x-forwarded-for": "203.0.113.9" });
      const res = await signInWithPassword(c, api.url, "tls@example.test", PASSWORD);
      expect(res.status).toBe(303);
      const sc = c.setCookies.find((s) => s.startsWith("intake_admin="))!;
      expect(sc, proto).toMatch(/;\s*secure/i);
      expect(sc).toMatch(/httponly/i);
      expect(c.setCookies.find((s) => s.startsWith("intake_login="))).toMatch(/;\s*secure/i);
    }
  });
});
