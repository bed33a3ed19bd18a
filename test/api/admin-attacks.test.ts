import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminUserRepository, TenantRepository } from "@intake/db";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { CookieClient, fieldOf, signInWithPassword } from "./admin-browser.ts";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * The admin surfaces attacked the way a hostile insider or outsider would, each attack that
 * once got through kept here as a test: open redirects after sign-in, NUL bytes that
 * PostgreSQL refuses (a 500 instead of a clear 400), and an admin limited to some tenants
 * reaching the others through the settings. On PostgreSQL, the stricter of the two databases
 * for text, and SQLite where the rule is not the database's.
 */
const PASSWORD = "correct horse battery staple";
const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as any });

describe.each(["pg", "sqlite"] as const)("admin surfaces under attack on %s", (database) => {
  let api: ApiUnderTest;
  let root: AdminClient;
  let limitedAdmin: AdminClient;
  let compliance: AdminClient;

  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database, env: { ADMIN_LOGIN_FAILURES_PER_ACCOUNT: "50", ADMIN_LOGIN_FAILURES_PER_ADDRESS: "500" } });
    const tenants = new TenantRepository(api.database.db);
    await tenants.create("tenant-a", "A");
    await tenants.create("tenant-b", "B");
    await new AdminUserRepository(api.database.db).create({ email: "ana@example.test", name: "Ana", role: "admin", password: PASSWORD });
    root = await signInAs(api, "admin");
    limitedAdmin = await signInAs(api, "admin", { tenantIds: ["tenant-a"] });
    compliance = await signInAs(api, "compliance");
  });
  afterAll(async () => api?.close());

  describe("open redirect after sign-in", () => {
    it.each(["/.//evil.example/x", "/admin/..//evil.example", "/a/b/../..//evil.example", "/./\\evil.example", "/%2e//evil.example"])("next=%j stays on this site", async (next) => {
      const c = new CookieClient();
      const page = await c.get(`${api.url}/admin/login`);
      const res = await c.request("POST", `${api.url}/admin/login`, { form: { _csrf: fieldOf(page.text, "_csrf")!, email: "ana@example.test", password: PASSWORD, next } });
      expect(res.status).toBe(303);
      const location = res.headers.get("location")!;
      expect(new URL(location, api.url).origin).toBe(new URL(api.url).origin);
      expect(location).not.toMatch(/^\/[/\\]/);
      // Signed in already, the sign-in page redirects to next at once: the same rule.
      const again = await c.get(`${api.url}/admin/login?next=${encodeURIComponent(next)}`);
      expect(again.status).toBe(302);
      expect(again.headers.get("location")).not.toMatch(/^\/[/\\]/);
    });
  });

  describe("session fixation", () => {
    it("signing in issues a new session token and ends the one the browser brought (a planted session is worthless)", async () => {
      const planted = await signInAs(api, "operator");
      const plantedToken = planted.cookie.split("=")[1]!;
      const c = new CookieClient();
      const page = await c.get(`${api.url}/admin/login`);
      // Planted after the page (with it, the sign-in page would redirect: already signed in).
      c.setCookie(api.url, "intake_admin", plantedToken);
      const res = await c.request("POST", `${api.url}/admin/login`, { form: { _csrf: fieldOf(page.text, "_csrf")!, email: "ana@example.test", password: PASSWORD, next: "/admin" } });
      expect(res.status).toBe(303);
      const fresh = c.cookie(api.url, "intake_admin")!;
      expect(fresh).toBeTruthy();
      expect(fresh).not.toBe(plantedToken);
      expect((await planted.request("GET", "/v1/admin/health")).status).toBe(401);
      expect((await c.get(`${api.url}/v1/admin/users`, { accept: "application/json" })).status).toBe(200);
    });
  });

  describe("NUL and other bytes the database refuses", () => {
    it("refuses a sign-in form holding a NUL (400 nul_in_form), on PostgreSQL too, where it was a 500", async () => {
      const res = await signInWithPassword(new CookieClient(), api.url, "ana\u0000@example.test", PASSWORD);
      expect(res.status).toBe(400);
      expect(res.text).toContain('data-code="nul_in_form"');
    });

    it("refuses a NUL in the URL of any admin route (400 nul_in_url): filters, exports, ids", async () => {
      for (const path of ["/v1/admin/quarantine?signature=%00x", "/v1/admin/quarantine?format=csv&signature=a%00", "/v1/admin/quarantine/summary?signature=%00", "/v1/admin/api-keys?tenant=%00", "/v1/admin/webhooks/deliveries?endpointId=%00", "/v1/admin/webhooks/deliveries/%00"]) {
        const res = await json(await root.request("GET", path));
        expect(res.status, path).toBe(400);
        expect(res.body.error.code, path).toBe("nul_in_url");
      }
      const patch = await json(await root.request("PATCH", "/v1/admin/users/adm_%00", { json: { name: "x" } }));
      expect(patch.status).toBe(400);
      const page = await compliance.request("GET", "/admin/quarantine?signature=%00", { headers: { accept: "text/html" } });
      expect(page.status).toBe(400);
      expect(await page.text()).toContain('data-code="nul_in_url"');
    });

    it("refuses a NUL in a name given to the settings (400 with the field), not a 500", async () => {
      const cases: [string, string, unknown][] = [
        ["POST", "/v1/admin/users", { email: "nul@example.test", role: "operator", name: "a\u0000b" }],
        ["POST", "/v1/admin/tenants", { id: "tenant-nul", name: "x\u0000" }],
        ["POST", "/v1/admin/api-keys", { tenantId: "tenant-a", name: "ci\u0000" }],
        ["POST", "/v1/admin/webhooks/endpoints", { tenantId: "tenant-a", url: "https://example.com/hook", description: "d\u0000" }],
      ];
      for (const [method, path, body] of cases) {
        const res = await json(await root.request(method, path, { json: body }));
        expect(res.status, path).toBe(400);
        expect(res.body.error.code, path).toMatch(/^invalid_/);
      }
    });
  });

  describe("an admin limited to some tenants", () => {
    it("cannot create an API key for another tenant, nor see or revoke that tenant's keys", async () => {
      const made = await json(await root.request("POST", "/v1/admin/api-keys", { json: { tenantId: "tenant-b", name: "b's key" } }));
      expect(made.status).toBe(201);
      const create = await json(await limitedAdmin.request("POST", "/v1/admin/api-keys", { json: { tenantId: "tenant-b", name: "mine now" } }));
      expect(create.status).toBe(404);
      const list = await json(await limitedAdmin.request("GET", "/v1/admin/api-keys"));
      expect(list.status).toBe(200);
      expect(list.body.apiKeys.map((k: { tenantId: string }) => k.tenantId)).not.toContain("tenant-b");
      const revoke = await limitedAdmin.request("DELETE", `/v1/admin/api-keys/${made.body.apiKey.id}`);
      expect(revoke.status).toBe(404);
      const own = await json(await limitedAdmin.request("POST", "/v1/admin/api-keys", { json: { tenantId: "tenant-a", name: "a's key" } }));
      expect(own.status).toBe(201);
    });

    it("cannot widen their own scope, create an admin without a scope, or change other admins", async () => {
      const widen = await json(await limitedAdmin.request("PATCH", `/v1/admin/users/${limitedAdmin.user.id}`, { json: { tenantIds: null } }));
      expect(widen.status).toBe(403);
      const create = await json(await limitedAdmin.request("POST", "/v1/admin/users", { json: { email: "accomplice@example.test", role: "admin", tenantIds: null } }));
      expect(create.status).toBe(403);
      const demote = await json(await limitedAdmin.request("PATCH", `/v1/admin/users/${root.user.id}`, { json: { disabled: true } }));
      expect(demote.status).toBe(403);
      const tenant = await json(await limitedAdmin.request("POST", "/v1/admin/tenants", { json: { id: "tenant-c" } }));
      expect(tenant.status).toBe(403);
      // The pages refuse the same.
      const page = await limitedAdmin.request("POST", "/admin/users", { form: { email: "accomplice2@example.test", role: "admin", tenantIds: "" } });
      expect(page.status).toBe(403);
      const me = await new AdminUserRepository(api.database.db).byId(limitedAdmin.user.id);
      expect(me?.tenantIds).toEqual(["tenant-a"]);
      expect(await new AdminUserRepository(api.database.db).byEmail("accomplice@example.test")).toBeNull();
    });
  });
  describe("the queue dashboard and other admin paths by odd spellings, without a session", () => {
    /** A request with the path exactly as written (fetch would normalise dots and encodings). */
    const raw = (method: string, path: string, headers: Record<string, string> = {}) =>
      new Promise<number>((resolve, reject) => {
        const u = new URL(api.url);
        const req = http.request({ host: u.hostname, port: u.port, method, path, headers: { accept: "application/json", ...headers } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    it.each([
      ["GET", "/admin/queues"],
      ["GET", "/ADMIN/QUEUES/api/queues"],
      ["GET", "/admin/queues/"],
      ["GET", "/admin/queues/api/queues?activeQueue=intake-scan"],
      ["GET", "/admin/queues/static/../api/queues"],
      ["GET", "/admin/queues/%2e%2e/queues/api/queues"],
      ["GET", "/admin/queues%2fapi%2fqueues"],
      ["GET", "//admin/queues/api/queues"],
      ["HEAD", "/admin/queues/api/queues"],
      ["PUT", "/admin/queues/api/queues/pause", { origin: "http://127.0.0.1" }],
      ["GET", "/Admin/Users"],
      ["GET", "/v1/admin/users/"],
      ["GET", "/v1/ADMIN/users"],
      ["GET", "/metrics/"],
    ] as [string, string, Record<string, string>?][])("%s %s is never answered with the dashboard or data", async (method, path, headers) => {
      const status = await raw(method, path, headers);
      expect([302, 303, 400, 401, 403, 404, 405]).toContain(status);
    });
  });
});
