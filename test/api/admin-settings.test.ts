import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminUserRepository, ApiKeyRepository, AuditLog } from "@intake/db";
import { DATABASE_KINDS } from "@intake/test";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";
import { CookieClient, signInWithPassword } from "./admin-browser.ts";

/**
 * The administrators' settings: admin users (create, role and tenant scope, disable),
 * tenants and their API keys (the secret shown once, revoke), as JSON and as pages, each
 * action on the audit trail under the admin who took it.
 */
describe.each(DATABASE_KINDS)("admin settings on %s", (kind) => {
  let api: ApiUnderTest;
  let admin: AdminClient;
  let audit: AuditLog;
  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: kind });
    admin = await signInAs(api, "admin", { email: `boss-${kind}@example.test` });
    audit = new AuditLog(api.database.db);
  });
  afterAll(async () => api?.close());
  const json = async (res: Response) => ({ status: res.status, body: (await res.json().catch(() => undefined)) as any });

  it("creates an admin user with a generated password shown once, who can then sign in", async () => {
    const created = await json(await admin.request("POST", "/v1/admin/users", { json: { email: "Rev@Example.test", role: "compliance", tenantIds: ["acme"], name: "Rev" } }));
    expect(created.status).toBe(201);
    expect(created.body.user).toMatchObject({ email: "rev@example.test", role: "compliance", tenantIds: ["acme"], signIn: { password: true, oidc: null } });
    expect(created.body.password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(JSON.stringify(created.body.user)).not.toContain("scrypt");
    const listed = await json(await admin.request("GET", "/v1/admin/users"));
    expect(JSON.stringify(listed.body)).not.toContain(created.body.password);
    const signedIn = await signInWithPassword(new CookieClient(), api.url, "rev@example.test", created.body.password);
    expect(signedIn.status).toBe(303);
    const row = (await audit.byAction("admin.user_created")).find((r) => r.detail.email === "rev@example.test")!;
    expect(row).toMatchObject({ actor: "admin", actorId: admin.user.id });
  });

  it("changes a user's role and tenant scope (ending their sessions) and disables them, refusing bad input", async () => {
    const rev = await signInAs(api, "compliance", { tenantIds: ["acme"] });
    const id = rev.user.id;
    expect((await rev.request("GET", "/admin")).status).toBe(200);
    const changed = await json(await admin.request("PATCH", `/v1/admin/users/${id}`, { json: { role: "operator", tenantIds: null } }));
    expect(changed).toMatchObject({ status: 200, body: { user: { role: "operator", tenantIds: null } } });
    expect((await rev.request("GET", "/admin")).status).toBe(303); // session ended: back to sign-in
    for (const bad of [{ role: "root" }, { tenantIds: ["../x"] }, { disabled: "yes" }, { email: "x@y.z" }]) {
      expect((await admin.request("PATCH", `/v1/admin/users/${id}`, { json: bad })).status, JSON.stringify(bad)).toBe(400);
    }
    expect((await admin.request("PATCH", "/v1/admin/users/adm_missing", { json: { role: "admin" } })).status).toBe(404);
    expect((await json(await admin.request("PATCH", `/v1/admin/users/${id}`, { json: { disabled: true } }))).body.user.disabledAt).not.toBeNull();
    const rows = await audit.byAction("admin.user_disabled");
    expect(rows[0]).toMatchObject({ actorId: admin.user.id, detail: { userId: id, after: { disabled: true } } });
  });

  it("does not let an admin demote or disable themselves", async () => {
    const self = await json(await admin.request("PATCH", `/v1/admin/users/${admin.user.id}`, { json: { role: "operator" } }));
    expect(self).toMatchObject({ status: 403, body: { error: { code: "own_access" } } });
    expect((await admin.request("PATCH", `/v1/admin/users/${admin.user.id}`, { json: { disabled: true } })).status).toBe(403);
  });

  it("creates tenants and their API keys (shown once, working), lists and revokes them", async () => {
    expect((await admin.request("POST", "/v1/admin/tenants", { json: { id: "globex", name: "Globex" } })).status).toBe(201);
    expect((await json(await admin.request("POST", "/v1/admin/tenants", { json: { id: "globex" } }))).body.error.code).toBe("tenant_exists");
    expect((await admin.request("POST", "/v1/admin/tenants", { json: { id: "Bad Id" } })).status).toBe(400);
    expect((await json(await admin.request("GET", "/v1/admin/tenants"))).body.tenants.map((t: { id: string }) => t.id)).toContain("globex");
    expect((await admin.request("POST", "/v1/admin/api-keys", { json: { tenantId: "nope", name: "x" } })).status).toBe(404);
    const key = await json(await admin.request("POST", "/v1/admin/api-keys", { json: { tenantId: "globex", name: "uploader" } }));
    expect(key.status).toBe(201);
    expect(key.body.key).toMatch(/^ik_live_/);
    expect((await api.call("GET", "/v1/uploads?limit=1", { key: key.body.key })).status).toBe(200);
    const listed = await json(await admin.request("GET", "/v1/admin/api-keys?tenant=globex"));
    expect(listed.body.apiKeys).toEqual([expect.objectContaining({ id: key.body.apiKey.id, tenantId: "globex", revokedAt: null })]);
    expect(JSON.stringify(listed.body)).not.toContain(key.body.key);
    expect((await admin.request("DELETE", `/v1/admin/api-keys/${key.body.apiKey.id}`)).status).toBe(204);
    expect(await new ApiKeyRepository(api.database.db).authenticate(key.body.key)).toBeNull();
    expect((await admin.request("DELETE", `/v1/admin/api-keys/${key.body.apiKey.id}`)).status).toBe(404);
    const actions = (await Promise.all(["admin.tenant_created", "admin.api_key_created", "admin.api_key_revoked"].map((a) => audit.byAction(a)))).map((r) => r[0]);
    for (const r of actions) expect(r).toMatchObject({ actorId: admin.user.id, tenantId: "globex" });
  });

  it("does the same from the pages, without JavaScript (forms with the session's CSRF token)", async () => {
    const page = await admin.request("GET", "/admin/users");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`value="${admin.csrfToken}"`);
    const created = await admin.request("POST", "/admin/users", { form: { email: "paged@example.test", role: "operator", name: "<b>Paged</b>", tenantIds: "", password: "" } });
    const createdHtml = await created.text();
    expect(created.status).toBe(200);
    expect(createdHtml).toMatch(/class="generated-password">[A-Za-z0-9_-]{24}</);
    expect(createdHtml).toContain("&lt;b&gt;Paged&lt;/b&gt;");
    const paged = (await new AdminUserRepository(api.database.db).byEmail("paged@example.test"))!;
    const upd = await admin.request("POST", `/admin/users/${paged.id}`, { form: { action: "update", role: "compliance", tenantIds: "acme, globex" } });
    expect(upd.status).toBe(200);
    expect((await new AdminUserRepository(api.database.db).byId(paged.id))).toMatchObject({ role: "compliance", tenantIds: ["acme", "globex"] });
    const bad = await admin.request("POST", `/admin/users/${paged.id}`, { form: { action: "update", role: "root" } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('data-code="invalid_role"');
    expect((await admin.request("POST", "/admin/tenants", { form: { id: "initech", name: "Initech" } })).status).toBe(200);
    const k = await admin.request("POST", "/admin/api-keys", { form: { tenantId: "initech", name: "web" } });
    const shown = /class="created-key">([^<]+)</.exec(await k.text())![1]!;
    expect((await api.call("GET", "/v1/uploads?limit=1", { key: shown })).status).toBe(200);
    const keyId = (await new ApiKeyRepository(api.database.db).list("initech"))[0]!.id;
    expect((await admin.request("POST", `/admin/api-keys/${keyId}/revoke`, { form: {} })).status).toBe(200);
    expect((await admin.request("GET", "/admin/api-keys").then((r) => r.text()))).not.toContain(shown);
  });
});
