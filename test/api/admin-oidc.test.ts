import http from "node:http";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import Provider from "oidc-provider";
import { AdminUserRepository, AuditLog } from "@intake/db";
import { freePort } from "@intake/test";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";
import { CookieClient, decodeEntities, type Hop } from "./admin-browser.ts";

/**
 * OpenID Connect sign-in end to end against a real OpenID provider (npm oidc-provider,
 * started here on a random port, its development login and consent pages driven like a
 * browser without JavaScript): the API redirects to it with PKCE, state and nonce, takes the
 * code back, verifies the ID token, reads the role and the tenants from the claims, and
 * starts a session that works on guarded routes.
 */
const CLIENT_ID = "intake-admin";
const CLIENT_SECRET = "oidc-test-client-secret-0123456789";
const accounts: Record<string, Record<string, unknown>> = {
  alice: { email: "alice@corp.example", email_verified: true, name: "Alice Reviewer", intake_role: "compliance", intake_tenants: ["acme"] },
  bob: { email: "bob@corp.example", email_verified: true, name: "Bob", intake_role: "superuser", intake_tenants: "*" },
  carol: { email: "carol@corp.example", email_verified: true, name: "Carol Admin", intake_role: "admin", intake_tenants: "*" },
};

describe("admin sign-in through OpenID Connect (oidc-provider)", () => {
  let api: ApiUnderTest;
  let idp: http.Server;
  let issuer: string;
  /** A second API of the same provider's, started by the test that needs it (no tenants claim). */
  let unscopedPort: number;
  beforeAll(async () => {
    const idpPort = await freePort();
    const apiPort = await freePort();
    unscopedPort = await freePort();
    issuer = `http://127.0.0.1:${idpPort}`;
    const callback = `http://127.0.0.1:${apiPort}/admin/oidc/callback`;
    const provider = new Provider(issuer, {
      clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [callback, `http://127.0.0.1:${unscopedPort}/admin/oidc/callback`], response_types: ["code"], grant_types: ["authorization_code"], token_endpoint_auth_method: "client_secret_basic" }],
      // The custom claims come with the openid scope; in a code flow they are served by
      // the userinfo endpoint (oidc-provider keeps scope claims out of the ID token).
      claims: { openid: ["sub", "intake_role", "intake_tenants"], email: ["email", "email_verified"], profile: ["name"] },
      findAccount: async (_ctx, id) => (accounts[id] ? { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) } : undefined),
      cookies: { keys: ["oidc-test-cookie-key-0123456789"] },
      features: { devInteractions: { enabled: true } },
      pkce: { required: () => true },
      // Explicit lifetimes (the provider warns about its defaults otherwise).
      ttl: { Session: 3600, Grant: 3600, Interaction: 600, IdToken: 600, AccessToken: 600, AuthorizationCode: 60 },
    });
    idp = http.createServer(provider.callback());
    idp.listen(idpPort, "127.0.0.1");
    await once(idp, "listening");
    api = await startApiUnderTest({
      storage: "fauxqs",
      database: "pg",
      env: { PORT: String(apiPort), OIDC_ISSUER: issuer, OIDC_CLIENT_ID: CLIENT_ID, OIDC_CLIENT_SECRET: CLIENT_SECRET, OIDC_REDIRECT_URL: callback, OIDC_ALLOW_INSECURE: "true", OIDC_TENANTS_CLAIM: "intake_tenants" },
    });
  });
  afterAll(async () => {
    await api?.close();
    idp?.closeAllConnections();
    await new Promise((r) => idp?.close(r));
  });

  /** Starts at the API, drives the provider's pages, and stops at the API's callback (not yet requested). */
  async function toCallback(c: CookieClient, login: string, next = "/admin", at: ApiUnderTest = api): Promise<{ start: Hop; callbackUrl: string }> {
    const start = await c.get(`${at.url}/admin/login/oidc?next=${encodeURIComponent(next)}`);
    expect(start.status).toBe(303);
    let h = await c.get(start.headers.get("location")!);
    for (let step = 0; step < 20; step++) {
      const location = h.headers.get("location");
      if (location) {
        const target = new URL(location, h.url).href;
        if (target.startsWith(`${at.url}/`)) return { start, callbackUrl: target };
        h = await c.get(target);
        continue;
      }
      const action = /<form[^>]*action="([^"]+)"/.exec(h.text)?.[1];
      const prompt = /name="prompt" value="(\w+)"/.exec(h.text)?.[1];
      if (!action || !prompt) throw new Error(`unexpected provider page (${h.status}): ${h.text.slice(0, 300)}`);
      h = await c.request("POST", new URL(decodeEntities(action), h.url).href, { form: prompt === "login" ? { prompt, login, password: "any password" } : { prompt } });
    }
    throw new Error("the provider never redirected back");
  }

  async function signIn(login: string, next = "/admin", at: ApiUnderTest = api) {
    const c = new CookieClient();
    const { start, callbackUrl } = await toCallback(c, login, next, at);
    const landed = await c.get(callbackUrl);
    return { c, start, callbackUrl, landed };
  }

  it("signs a reviewer in: PKCE S256 + state + nonce, a Lax flow cookie, a Strict session cookie, role and tenants from the claims", async () => {
    const { c, start, landed } = await signIn("alice", "/admin/users?from=idp");
    const auth = new URL(start.headers.get("location")!);
    expect(auth.origin).toBe(issuer);
    expect(auth.searchParams.get("code_challenge_method")).toBe("S256");
    expect(auth.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auth.searchParams.get("state")).toBeTruthy();
    expect(auth.searchParams.get("nonce")).toBeTruthy();
    expect(auth.searchParams.get("client_id")).toBe(CLIENT_ID);
    const flowCookie = c.setCookies.find((s) => s.startsWith("intake_oidc=") && !/max-age=0/i.test(s))!;
    expect(flowCookie).toMatch(/samesite=lax/i);
    expect(flowCookie).toMatch(/httponly/i);
    expect(flowCookie).toMatch(/path=\/admin\/oidc/i);
    // The state is not in the cookie: only a random id pointing at the server-side flow.
    expect(flowCookie).not.toContain(auth.searchParams.get("state")!);

    expect(landed.status).toBe(200);
    // A same-site hand-over (meta refresh) to `next`, so the Strict cookie is sent on it.
    expect(landed.text).toContain('<meta http-equiv="refresh" content="0;url=/admin/users?from=idp">');
    const session = c.setCookies.find((s) => s.startsWith("intake_admin="))!;
    expect(session).toMatch(/samesite=strict/i);
    expect(session).toMatch(/httponly/i);

    const home = await c.get(`${api.url}/admin`);
    expect(home.status).toBe(200);
    expect(home.text).toContain("Alice Reviewer");
    expect(home.text).toContain("limited to tenants acme");
    // compliance: no settings.manage
    expect((await c.get(`${api.url}/v1/admin/users`, { accept: "application/json" })).status).toBe(403);

    const alice = (await new AdminUserRepository(api.database.db).byOidcSubject(issuer, "alice"))!;
    expect(alice).toMatchObject({ email: "alice@corp.example", role: "compliance", tenantIds: ["acme"], hasPassword: false });
    const audit = new AuditLog(api.database.db);
    expect((await audit.byAction("admin.user_provisioned")).length).toBe(1);
    expect((await audit.byAction("admin.signed_in")).some((r) => r.detail.method === "oidc")).toBe(true);
  });

  it("follows the provider's role and tenants on every sign-in, for the same admin user", async () => {
    const users = new AdminUserRepository(api.database.db);
    const before = (await users.byOidcSubject(issuer, "alice"))!;
    accounts.alice = { ...accounts.alice, intake_role: "operator", intake_tenants: ["acme", "globex"] };
    try {
      const { c, landed } = await signIn("alice");
      expect(landed.status).toBe(200);
      const after = (await users.byOidcSubject(issuer, "alice"))!;
      expect(after).toMatchObject({ id: before.id, role: "operator", tenantIds: ["acme", "globex"] });
      expect((await users.list()).filter((u) => u.email === "alice@corp.example")).toHaveLength(1);
      expect((await c.get(`${api.url}/v1/admin/health`, { accept: "application/json" })).status).not.toBe(403);
    } finally {
      accounts.alice = { ...accounts.alice, intake_role: "compliance", intake_tenants: ["acme"] };
    }
  });

  it("signs an admin in whose session opens the settings", async () => {
    const { c, landed } = await signIn("carol");
    expect(landed.status).toBe(200);
    const res = await c.get(`${api.url}/v1/admin/users`, { accept: "application/json" });
    expect(res.status).toBe(200);
    const emails = (JSON.parse(res.text).users as { email: string }[]).map((u) => u.email);
    expect(emails).toEqual(expect.arrayContaining(["alice@corp.example", "carol@corp.example"]));
  });

  it("refuses a role claim that is not operator, compliance or admin, with a clear page and no session", async () => {
    const { c, landed } = await signIn("bob");
    expect(landed.status).toBe(403);
    expect(landed.text).toContain('data-code="role_not_allowed"');
    expect(landed.text).toMatch(/intake_role.*must be operator, compliance or admin/);
    expect(c.cookie(api.url, "intake_admin")).toBeUndefined();
    expect(await new AdminUserRepository(api.database.db).byOidcSubject(issuer, "bob")).toBeNull();
  });

  it("refuses a tampered state, a replayed callback and a callback without the browser's flow cookie", async () => {
    const c = new CookieClient();
    const { callbackUrl } = await toCallback(c, "carol");
    const tampered = new URL(callbackUrl);
    tampered.searchParams.set("state", `${tampered.searchParams.get("state")}x`);
    const refused = await c.get(tampered.href);
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('data-code="sign_in_not_verified"');
    expect(c.cookie(api.url, "intake_admin")).toBeUndefined();
    // The flow was used up by that attempt: the genuine callback is refused now too.
    const replay = await c.get(callbackUrl);
    expect(replay.status).toBe(400);
    expect(replay.text).toContain('data-code="sign_in_expired"');

    // Login CSRF: a callback URL carried to another browser (no flow cookie) does nothing.
    const { callbackUrl: other } = await toCallback(new CookieClient(), "carol");
    const victim = new CookieClient();
    const forced = await victim.get(other);
    expect(forced.status).toBe(400);
    expect(victim.cookie(api.url, "intake_admin")).toBeUndefined();
  });

  it("refuses a disabled account that the provider still vouches for", async () => {
    const users = new AdminUserRepository(api.database.db);
    const carol = (await users.byOidcSubject(issuer, "carol"))!;
    await users.update(carol.id, { disabled: true });
    try {
      const { c, landed } = await signIn("carol");
      expect(landed.status).toBe(403);
      expect(landed.text).toContain('data-code="account_disabled"');
      expect(c.cookie(api.url, "intake_admin")).toBeUndefined();
    } finally {
      await users.update(carol.id, { disabled: false });
    }
  });

  it("writes no client secret, code, state or session token to the log", async () => {
    const { c, callbackUrl } = await signIn("carol");
    const q = new URL(callbackUrl).searchParams;
    const log = api.logs.join("\n");
    expect(log).toContain("admin signed in");
    for (const secret of [CLIENT_SECRET, q.get("code")!, q.get("state")!, c.cookie(api.url, "intake_admin")!]) expect(log).not.toContain(secret);
  });

  it("does not take over a password account of the same email", async () => {
    await new AdminUserRepository(api.database.db).create({ email: "dave@corp.example", role: "operator", password: "a local password 123" });
    accounts.dave = { email: "dave@corp.example", email_verified: true, name: "Dave", intake_role: "admin", intake_tenants: "*" };
    const { landed } = await signIn("dave");
    expect(landed.status).toBe(403);
    expect(landed.text).toContain('data-code="account_exists"');
    expect((await new AdminUserRepository(api.database.db).byEmail("dave@corp.example"))!.role).toBe("operator");
  });
  it("keeps a tenant limit set in the settings when no tenants claim is configured (a sign-in never widens it)", async () => {
    const unscoped = await startApiUnderTest({
      storage: "fauxqs",
      database: "sqlite",
      env: { PORT: String(unscopedPort), OIDC_ISSUER: issuer, OIDC_CLIENT_ID: CLIENT_ID, OIDC_CLIENT_SECRET: CLIENT_SECRET, OIDC_REDIRECT_URL: `http://127.0.0.1:${unscopedPort}/admin/oidc/callback`, OIDC_ALLOW_INSECURE: "true" },
    });
    try {
      const users = new AdminUserRepository(unscoped.database.db);
      expect((await signIn("carol", "/admin", unscoped)).landed.status).toBe(200);
      const carol = (await users.byOidcSubject(issuer, "carol"))!;
      expect(carol.tenantIds).toBeNull();
      // An admin limits her to one tenant in the settings; the provider says nothing of tenants.
      await users.update(carol.id, { tenantIds: ["acme"] });
      const again = await signIn("carol", "/admin", unscoped);
      expect(again.landed.status).toBe(200);
      expect((await users.byOidcSubject(issuer, "carol"))!.tenantIds).toEqual(["acme"]);
      expect((await again.c.get(`${unscoped.url}/admin`)).text).toContain("limited to tenants acme");
    } finally {
      await unscoped.close();
    }
  });
});
