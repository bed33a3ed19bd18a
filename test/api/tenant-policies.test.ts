import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, TenantPolicyRepository } from "@intake/db";
import { DATABASE_KINDS } from "@intake/test";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * Per-tenant policies through the real API: the admin API and page (admins only, CSRF,
 * tenant scope, audit rows with before and after, a 400 naming the field), the create,
 * session and part endpoints refusing what the tenant's policy refuses with today's codes
 * and the tenant's limits in the details, and the policy in force recorded on each upload.
 */
describe.each(DATABASE_KINDS)("tenant policies through the API on %s", (kind) => {
  let api: ApiUnderTest;
  let admin: AdminClient;
  let audit: AuditLog;
  let acmeKey: string;
  let globexKey: string;
  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: kind, env: { MAX_UPLOAD_BYTES: String(50 * 1024 * 1024), ALLOWED_TYPES: "image/png,application/pdf,application/zip,text/plain" } });
    admin = await signInAs(api, "admin");
    audit = new AuditLog(api.database.db);
    acmeKey = await api.newKey("acme");
    globexKey = await api.newKey("globex");
  });
  afterAll(async () => api?.close());
  const json = async (res: Response) => ({ status: res.status, body: (await res.json().catch(() => undefined)) as any });
  const put = (tenant: string, policy: unknown, o: { headers?: Record<string, string> } = {}) => admin.request("PUT", `/v1/admin/tenants/${tenant}/policy`, { json: policy, ...o }).then(json);
  const create = (key: string, body: Record<string, unknown>) => api.call("POST", "/v1/uploads", { key, body: { filename: "a.bin", contentType: "application/pdf", size: 100, ...body } });

  it("shows the defaults at version 0 and records every change with before and after", async () => {
    const first = await json(await admin.request("GET", "/v1/admin/tenants/acme/policy"));
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ tenantId: "acme", version: 0, policy: {}, inForce: { version: 0, maxSize: 50 * 1024 * 1024, acceptArchives: true, allowedTypes: ["application/pdf", "application/zip", "image/png", "text/plain"] } });
    const changed = await put("acme", { allowedTypes: ["application/pdf", "image/png"], maxSize: 1000, maxUrlTtlSeconds: 900, quarantineRetentionDays: 7 });
    expect(changed).toMatchObject({ status: 200, body: { version: 1, inForce: { version: 1, maxSize: 1000, maxUrlTtlSeconds: 900, urlTtlSeconds: 600, quarantineRetentionDays: 7 } } });
    expect(changed.body.inForce.digest).toMatch(/^[0-9a-f]{64}$/);
    const rows = (await audit.byAction("admin.tenant_policy_changed")).filter((r) => r.tenantId === "acme");
    expect(rows[0]).toMatchObject({ actor: "admin", actorId: admin.user.id, detail: { versionBefore: 0, version: 1, before: null, after: { maxSize: 1000 } } });
  });

  it("refuses creates the tenant's policy refuses, with today's codes and the tenant's limits, and lets another tenant through", async () => {
    const tooBig = await create(acmeKey, { size: 1001 });
    expect(tooBig).toMatchObject({ status: 413, body: { error: { code: "size_too_large", details: { maxSize: 1000, policyVersion: 1 } } } });
    expect(tooBig.body.error.message).toMatch(/maximum of 1000 bytes/);
    const type = await create(acmeKey, { contentType: "text/plain" });
    expect(type).toMatchObject({ status: 400, body: { error: { code: "content_type_not_allowed", details: { allowed: ["application/pdf", "image/png"], policyVersion: 1 } } } });
    const expiry = await create(acmeKey, { expiresIn: 901 });
    expect(expiry).toMatchObject({ status: 400, body: { error: { code: "invalid_expiry", details: { maxUrlTtlSeconds: 900 } } } });
    // The limit itself is allowed; globex has no policy of its own and keeps the deployment's.
    expect((await create(acmeKey, { size: 1000 })).status).toBe(201);
    expect((await create(globexKey, { size: 1001, contentType: "text/plain" })).status).toBe(201);
    expect((await api.call("POST", "/v1/uploads", { key: acmeKey, body: { filename: "a.pdf", contentType: "application/pdf", size: 1001, method: "POST" } })).status).toBe(413);
  });

  it("records the policy in force on each upload: a change applies to the next create, not to earlier uploads", async () => {
    const before = await create(acmeKey, { size: 10 });
    await put("acme", { allowedTypes: ["application/pdf", "image/png"], maxSize: 500 }, { headers: { "if-match": '"1"' } });
    const after = await create(acmeKey, { size: 10 });
    const [a, b] = await Promise.all([api.uploads.getById(before.body.upload.id), api.uploads.getById(after.body.upload.id)]);
    expect(a!.policy).toMatchObject({ version: 1, maxSize: 1000, quarantineRetentionDays: 7 });
    expect(b!.policy).toMatchObject({ version: 2, maxSize: 500, quarantineRetentionDays: 90 });
    expect(a!.policy!.digest).not.toBe(b!.policy!.digest);
    // The API names the policy each upload is judged under.
    expect(before.body.upload.policy).toEqual({ version: 1, digest: a!.policy!.digest });
    const shown = await api.call("GET", `/v1/uploads/${after.body.upload.id}`, { key: acmeKey });
    expect(shown.body.upload.policy).toEqual({ version: 2, digest: b!.policy!.digest });
    // A change over a version the admin no longer sees is refused, and nothing changes.
    const stale = await put("acme", { maxSize: 5 }, { headers: { "if-match": '"1"' } });
    expect(stale).toMatchObject({ status: 409, body: { error: { code: "policy_changed" } } });
    expect((await new TenantPolicyRepository(api.database.db).get("acme"))!.policy.maxSize).toBe(500);
  });

  it("refuses archives for a tenant that refuses them, and accepts them for another", async () => {
    await put("globex", { acceptArchives: false });
    const refused = await create(globexKey, { contentType: "application/zip" });
    expect(refused).toMatchObject({ status: 400, body: { error: { code: "content_type_not_allowed", details: { acceptArchives: false } } } });
    expect(refused.body.error.message).toMatch(/archive/);
    // The alias of a ZIP is the same archive.
    expect((await create(globexKey, { contentType: "application/x-zip-compressed" })).status).toBe(400);
    expect((await api.call("POST", "/v1/uploads", { key: acmeKey, body: { filename: "a.zip", contentType: "application/zip", size: 10 } })).status).toBe(400); // not among acme's types
    await put("acme", { acceptArchives: true }, { headers: { "if-match": '"2"' } });
    expect((await create(acmeKey, { contentType: "application/zip", size: 10 })).status).toBe(201);
    // Upload sessions: the tenant's policy bounds the session's types.
    const session = await api.call("POST", "/v1/upload-sessions", { key: globexKey, body: { allowedTypes: ["application/zip"] } });
    expect(session).toMatchObject({ status: 400, body: { error: { code: "session_type_not_allowed", details: { type: "application/zip" } } } });
    const defaults = await api.call("POST", "/v1/upload-sessions", { key: globexKey, body: {} });
    expect(defaults.status).toBe(201);
    expect(defaults.body.session.allowedTypes).not.toContain("application/zip");
  });

  it("refuses a policy past the deployment's bounds with a 400 naming the field, writing nothing", async () => {
    const before = (await new TenantPolicyRepository(api.database.db).get("acme"))!.version;
    const cases: [unknown, string][] = [
      [{ allowedTypes: ["application/x-msdownload"] }, "allowedTypes"],
      [{ allowedTypes: ["text/html", "image/png"] }, "allowedTypes"],
      [{ maxSize: 50 * 1024 * 1024 + 1 }, "maxSize"],
      [{ maxUrlTtlSeconds: 3601 }, "maxUrlTtlSeconds"],
      [{ quarantineRetentionDays: 0 }, "quarantineRetentionDays"],
      [{ acceptArchives: "no" }, "acceptArchives"],
      [{ webhookEvents: ["upload.created"] }, "webhookEvents"],
    ];
    for (const [policy, field] of cases) {
      const res = await put("acme", policy);
      expect({ policy, status: res.status, code: res.body.error.code, field: res.body.error.details?.field }).toEqual({ policy, status: 400, code: "invalid_policy", field });
    }
    expect((await put("acme", { maxSize: 5, root: true })).body.error.code).toBe("unknown_field");
    expect((await admin.request("PUT", "/v1/admin/tenants/acme/policy", { json: ["maxSize"] })).status).toBe(400);
    expect((await new TenantPolicyRepository(api.database.db).get("acme"))!.version).toBe(before);
  });

  it("lets no one but an admin of the tenant change it: other roles, forged requests, another tenant's admin", async () => {
    const before = (await new TenantPolicyRepository(api.database.db).get("acme"))!.version;
    for (const role of ["compliance", "operator"] as const) {
      const other = await signInAs(api, role);
      expect((await json(await other.request("PUT", "/v1/admin/tenants/acme/policy", { json: { maxSize: 1 } }))).body.error.code).toBe("forbidden");
      expect((await other.request("GET", "/v1/admin/tenants/acme/policy")).status).toBe(403);
      expect((await other.request("POST", "/admin/tenants/acme/policy", { form: { maxSize: "1" } })).status).toBe(403);
    }
    expect((await json(await admin.request("PUT", "/v1/admin/tenants/acme/policy", { json: { maxSize: 1 }, csrf: false }))).body.error.code).toBe("csrf_failed");
    expect((await json(await admin.request("PUT", "/v1/admin/tenants/acme/policy", { json: { maxSize: 1 }, headers: { origin: "https://evil.example" } }))).body.error.code).toBe("csrf_failed");
    expect((await admin.request("POST", "/admin/tenants/acme/policy", { form: { maxSize: "1" }, csrf: false })).status).toBe(403);
    expect((await api.call("PUT", "/v1/admin/tenants/acme/policy", { key: acmeKey, body: { maxSize: 1 } })).status).toBe(403);
    const scoped = await signInAs(api, "admin", { tenantIds: ["globex"] });
    expect((await json(await scoped.request("PUT", "/v1/admin/tenants/acme/policy", { json: { maxSize: 1 } }))).body.error.code).toBe("tenant_not_found");
    expect((await scoped.request("GET", "/v1/admin/tenants/acme/policy")).status).toBe(404);
    expect((await scoped.request("PUT", "/v1/admin/tenants/globex/policy", { json: { acceptArchives: false, maxSize: 1000 } })).status).toBe(200);
    expect((await admin.request("PUT", "/v1/admin/tenants/nobody/policy", { json: {} })).status).toBe(404);
    expect((await new TenantPolicyRepository(api.database.db).get("acme"))!.version).toBe(before);
  });

  it("shows and changes the policy on the tenant's page, escaping what it shows, refusals on the page", async () => {
    const page = await admin.request("GET", "/admin/tenants/acme/policy", { headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`name="_csrf" value="${admin.csrfToken}"`);
    expect(html).toMatch(/class="policy-version">\d+</);
    const version = /name="version" value="(\d+)"/.exec(html)![1]!;
    const saved = await admin.request("POST", "/admin/tenants/acme/policy", {
      headers: { accept: "text/html" },
      form: { version, allowedTypes: "application/pdf", maxSize: "2000", urlTtlSeconds: "", maxUrlTtlSeconds: "", quarantineRetentionDays: "30", acceptArchives: "false", stripImageMetadata: "", webhookEventsDefault: "on" },
    });
    expect(saved.status).toBe(200);
    expect(await saved.text()).toContain(`saved: version ${Number(version) + 1}`);
    expect((await new TenantPolicyRepository(api.database.db).get("acme"))!.policy).toEqual({ allowedTypes: ["application/pdf"], maxSize: 2000, quarantineRetentionDays: 30, acceptArchives: false });
    const row = (await audit.byAction("admin.tenant_policy_changed")).find((r) => r.tenantId === "acme")!;
    expect(row).toMatchObject({ actorId: admin.user.id, detail: { after: { maxSize: 2000 } } });
    // Bad input: the same page with the reason, nothing saved.
    const kept = { allowedTypesDefault: "on" };
    const badForms: Record<string, string>[] = [{ ...kept, maxSize: "1e3" }, { ...kept, maxSize: "99999999999999" }, { allowedTypes: "<script>alert(1)</script>" }, { ...kept, acceptArchives: "maybe" }];
    for (const form of badForms) {
      const bad = await admin.request("POST", "/admin/tenants/acme/policy", { headers: { accept: "text/html" }, form: { webhookEventsDefault: "on", ...form } });
      const text = await bad.text();
      expect(bad.status, JSON.stringify(form)).toBe(400);
      expect(text).toContain('data-code="invalid_policy"');
      expect(text).not.toContain("<script>alert(1)</script>");
    }
    expect((await new TenantPolicyRepository(api.database.db).get("acme"))!.policy.maxSize).toBe(2000);
    // The tenants page links to it.
    expect(await (await admin.request("GET", "/admin/tenants", { headers: { accept: "text/html" } })).text()).toContain('href="/admin/tenants/acme/policy"');
  });
});
