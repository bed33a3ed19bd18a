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

});
