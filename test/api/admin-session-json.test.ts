import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminUserRepository, AuditLog } from "@intake/db";
import { DATABASE_KINDS } from "@intake/test";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * The JSON twin of password sign-in, for scripts and the `intake` CLI: POST, GET and DELETE
 * /v1/admin/session. The same rules as the form (limits, audit rows, one answer for every
 * kind of wrong credentials), and no way for another site to sign a browser in or out.
 */
const PASSWORD = "correct horse battery staple";

describe.each(DATABASE_KINDS)("admin session as JSON on %s", (kind) => {
  let api: ApiUnderTest;
  let audit: AuditLog;
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${api.url}/v1/admin/session`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body), redirect: "manual" });
  const cookieOf = (res: Response) => /intake_admin=([^;]+)/.exec(res.headers.getSetCookie().join("\n"))?.[1];
  const codeOf = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: kind, env: { ADMIN_LOGIN_FAILURES_PER_ACCOUNT: "3", ADMIN_LOGIN_FAILURES_PER_ADDRESS: "200" } });
    audit = new AuditLog(api.database.db);
    const users = new AdminUserRepository(api.database.db);
    await users.create({ email: "ana@example.test", name: "Ana", role: "admin", password: PASSWORD });
    await users.create({ email: "limited@example.test", name: "Lim", role: "operator", password: PASSWORD });
    await users.create({ email: "sso@example.test", name: "SSO only", role: "admin" });
    await users.create({ email: "caps@example.test", name: "Caps", role: "admin", password: PASSWORD });
    const gone = await users.create({ email: "gone@example.test", name: "Disabled", role: "admin", password: PASSWORD });
    await users.update(gone.id, { disabled: true });
  });
  afterAll(async () => api?.close());

  it("signs in with the form's cookie and answers the session's CSRF token; GET names the admin; an audit row", async () => {
    const res = await post({ email: "Ana@Example.test", password: PASSWORD });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { admin: { email: string; role: string }; csrfToken: string; expiresAt: string };
    expect(body).toMatchObject({ admin: { email: "ana@example.test", role: "admin", tenantIds: null }, csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/) });
    const sc = res.headers.getSetCookie().find((c) => c.startsWith("intake_admin="))!;
    expect(sc).toMatch(/httponly/i);
    expect(sc).toMatch(/samesite=strict/i);
    const token = cookieOf(res)!;
    expect(JSON.stringify(body)).not.toContain(token);
    const who = await fetch(`${api.url}/v1/admin/session`, { headers: { cookie: `intake_admin=${token}` } });
    expect(who.status).toBe(200);
    expect(await who.json()).toEqual({ admin: { id: expect.any(String), email: "ana@example.test", name: "Ana", role: "admin", tenantIds: null } });
    expect((await audit.byAction("admin.signed_in")).some((r) => r.detail.method === "password")).toBe(true);
    expect(api.logs.join("\n")).not.toContain(token);
    expect(api.logs.join("\n")).not.toContain(body.csrfToken);
  });

  it("answers every kind of wrong credentials alike (401 invalid_credentials, no cookie), an OIDC-only and a disabled account included", async () => {
    for (const creds of [{ email: "ana@example.test", password: "wrong wrong wrong" }, { email: "nobody@example.test", password: PASSWORD }, { email: "sso@example.test", password: PASSWORD }, { email: "gone@example.test", password: PASSWORD }, { email: "not an address", password: PASSWORD }]) {
      const res = await post(creds);
      expect(res.status, creds.email).toBe(401);
      expect(cookieOf(res), creds.email).toBeUndefined();
      // No OIDC sign-in on this deployment: nothing to hint at.
      expect(await res.json(), creds.email).toEqual({ error: { code: "invalid_credentials", message: "the email address or the password is wrong" } });
    }
    for (const bad of [{}, { email: "ana@example.test" }, { email: "ana@example.test", password: "" }]) expect((await post(bad)).status, JSON.stringify(bad)).toBe(400);
    expect(await codeOf(await post({ email: "ana@example.test", password: PASSWORD, role: "admin" }))).toBe("unknown_field");
    expect(await codeOf(await post({ email: ["ana@example.test"], password: PASSWORD }))).toBe("invalid_field");
    expect((await post({ email: "ana@example.test", password: "x".repeat(1025) })).status).toBe(400);
  });

  it("cannot be used by another site: a form or text/plain body (no preflight) is refused, and so is another Origin or Sec-Fetch-Site", async () => {
    const creds = JSON.stringify({ email: "ana@example.test", password: PASSWORD });
    for (const type of ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]) {
      const res = await post(creds, { "content-type": type });
      expect(res.status, type).toBe(415);
      expect(cookieOf(res), type).toBeUndefined();
    }
    // Origin "null": a sandboxed iframe, a data: URL or a cross-origin redirect's follow-up.
    const elsewhere: Record<string, string>[] = [{ origin: "https://evil.example" }, { origin: "null" }, { "sec-fetch-site": "cross-site" }, { "sec-fetch-site": "same-site" }];
    for (const headers of elsewhere) {
      const res = await post(creds, headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(await codeOf(res)).toBe("csrf_failed");
      expect(cookieOf(res)).toBeUndefined();
    }
    // The API's own origin is fine.
    expect((await post(creds, { origin: api.url })).status).toBe(201);
  });

  it("refuses a tenant API key, even with the right password", async () => {
    const key = await api.newKey("acme");
    const res = await post({ email: "ana@example.test", password: PASSWORD }, { authorization: `Bearer ${key}` });
    expect(res.status).toBe(403);
    expect(await codeOf(res)).toBe("api_key_not_allowed");
  });

  it("counts failures like the form: past the account's limit even the right password is refused (429, Retry-After)", async () => {
    for (let i = 0; i < 3; i++) expect((await post({ email: "limited@example.test", password: `wrong ${i} wrong wrong` })).status).toBe(401);
    const res = await post({ email: "limited@example.test", password: PASSWORD });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(cookieOf(res)).toBeUndefined();
  });

  it("counts one account however its address is typed, and the connection's address whatever X-Forwarded-For says (no trusted proxy)", async () => {
    const typed = ["CAPS@example.test", "  caps@example.test  ", "Caps@Example.TEST"];
    for (const [i, email] of typed.entries()) {
      const res = await post({ email, password: `wrong ${i} wrong wrong` }, { "x-forwarded-for": `203.0.113.${i + 1}`, "x-real-ip": `203.0.113.${i + 1}` });
      expect(res.status, email).toBe(401);
    }
    const res = await post({ email: "caps@example.test", password: PASSWORD }, { "x-forwarded-for": "198.51.100.7" });
    expect(res.status).toBe(429);
    expect(cookieOf(res)).toBeUndefined();
    const failed = (await audit.byAction("admin.sign_in_failed")).filter((r) => r.detail.email === "caps@example.test");
    expect(failed.map((r) => r.detail.address)).toEqual(typed.map(() => "127.0.0.1"));
  });

  it("starts a new session whatever cookie the browser brought (no fixation), and ends the one it brought", async () => {
    const first = await post({ email: "ana@example.test", password: PASSWORD });
    const planted = cookieOf(first)!;
    const res = await post({ email: "ana@example.test", password: PASSWORD }, { cookie: `intake_admin=${planted}` });
    expect(res.status).toBe(201);
    const issued = cookieOf(res)!;
    expect(issued).not.toBe(planted);
    expect((await fetch(`${api.url}/v1/admin/session`, { headers: { cookie: `intake_admin=${planted}` } })).status).toBe(401);
    expect((await fetch(`${api.url}/v1/admin/session`, { headers: { cookie: `intake_admin=${issued}` } })).status).toBe(200);
    // A value the attacker made up is never adopted either.
    const madeUp = "A".repeat(43);
    expect(cookieOf(await post({ email: "ana@example.test", password: PASSWORD }, { cookie: `intake_admin=${madeUp}` }))).not.toBe(madeUp);
  });

  it("refuses a tenant API key on GET and DELETE too, even beside a valid session cookie", async () => {
    const res = await post({ email: "ana@example.test", password: PASSWORD });
    const cookie = `intake_admin=${cookieOf(res)!}`;
    const { csrfToken } = (await res.json()) as { csrfToken: string };
    const key = await api.newKey("acme");
    for (const method of ["GET", "DELETE"]) {
      const r = await fetch(`${api.url}/v1/admin/session`, { method, headers: { cookie, authorization: `Bearer ${key}`, "x-csrf-token": csrfToken } });
      expect([method, r.status, await codeOf(r)]).toEqual([method, 403, "api_key_not_allowed"]);
    }
    expect((await fetch(`${api.url}/v1/admin/session`, { headers: { cookie } })).status).toBe(200);
  });

  it("signs out with DELETE only with the session's CSRF token from this site; the session then answers 401", async () => {
    const res = await post({ email: "ana@example.test", password: PASSWORD });
    const token = cookieOf(res)!;
    const { csrfToken } = (await res.json()) as { csrfToken: string };
    const del = (headers: Record<string, string>) => fetch(`${api.url}/v1/admin/session`, { method: "DELETE", headers: { cookie: `intake_admin=${token}`, ...headers } });
    const forged: Record<string, string>[] = [{}, { "x-csrf-token": "W".repeat(32) }, { "x-csrf-token": csrfToken, origin: "https://evil.example" }, { "x-csrf-token": csrfToken, origin: "null" }];
    for (const h of forged) {
      const r = await del(h);
      expect(r.status, JSON.stringify(h)).toBe(403);
      expect(await codeOf(r)).toBe("csrf_failed");
    }
    expect((await fetch(`${api.url}/v1/admin/session`, { headers: { cookie: `intake_admin=${token}` } })).status).toBe(200);
    const out = await del({ "x-csrf-token": csrfToken });
    expect(out.status).toBe(204);
    expect(out.headers.getSetCookie().join("\n")).toMatch(/intake_admin=;/);
    expect((await fetch(`${api.url}/v1/admin/session`, { headers: { cookie: `intake_admin=${token}` } })).status).toBe(401);
    expect((await del({ "x-csrf-token": csrfToken })).status).toBe(401);
    expect((await audit.byAction("admin.signed_out")).length).toBeGreaterThan(0);
  });
});

describe("admin session as JSON where OIDC sign-in is offered", () => {
  let api: ApiUnderTest;
  beforeAll(async () => {
    // Discovery is lazy: the issuer is never asked anything by a password sign-in.
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { OIDC_ISSUER: "http://127.0.0.1:9/issuer", OIDC_CLIENT_ID: "intake", OIDC_REDIRECT_URL: "http://127.0.0.1:9/admin/oidc/callback", OIDC_ALLOW_INSECURE: "true" } });
    await new AdminUserRepository(api.database.db).create({ email: "sso@example.test", name: "SSO only", role: "admin" });
  });
  afterAll(async () => api?.close());

  it("says so in the refusal (details.oidc), the same for every account, so a client can explain", async () => {
    for (const email of ["sso@example.test", "nobody@example.test"]) {
      const res = await fetch(`${api.url}/v1/admin/session`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: PASSWORD }) });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: { code: "invalid_credentials", message: "the email address or the password is wrong", details: { oidc: true } } });
    }
  });
});

describe("admin session as JSON behind TLS (ADMIN_COOKIE_SECURE)", () => {
  let api: ApiUnderTest;
  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { ADMIN_COOKIE_SECURE: "true" } });
    await new AdminUserRepository(api.database.db).create({ email: "ana@example.test", name: "Ana", role: "admin", password: PASSWORD });
  });
  afterAll(async () => api?.close());

  it("sets the session cookie Secure, HttpOnly and SameSite=Strict, for the whole site, even on a plain-http hop to the proxy", async () => {
    const res = await fetch(`${api.url}/v1/admin/session`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "ana@example.test", password: PASSWORD }) });
    expect(res.status).toBe(201);
    const sc = res.headers.getSetCookie().find((c) => c.startsWith("intake_admin="))!;
    const attributes = sc.split(";").slice(1).map((a) => a.trim().toLowerCase());
    expect(attributes).toEqual(expect.arrayContaining(["secure", "httponly", "samesite=strict", "path=/"]));
  });
});
