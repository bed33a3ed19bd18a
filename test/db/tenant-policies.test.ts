import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, policyInForce, TenantPolicyRepository, TenantRepository, UploadRepository, WebhookRepository, type NewUpload } from "@intake/db";
import { objectKey, resolvePolicy, VERDICT_EVENT_TYPES, type PolicyTerms } from "@intake/domain";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "@intake/test";

const DEPLOYMENT: PolicyTerms = {
  allowedTypes: ["application/pdf", "application/zip", "image/png", "text/plain"],
  maxSize: 10_000_000,
  urlTtlSeconds: 600,
  maxUrlTtlSeconds: 3600,
  quarantineRetentionDays: 90,
  acceptArchives: true,
  stripImageMetadata: false,
  webhookEvents: [...VERDICT_EVENT_TYPES],
};
const DAY = 86_400_000;

/**
 * Tenants' policies in the database: the version counter and its conflicts, one audit row
 * per change (before and after), the policy recorded on an upload and read back, the
 * reaper's retention per upload, and the outbox writing only the events a tenant's policy
 * lets through.
 */
describe.each(DATABASE_KINDS)("tenant policies on %s", (kind) => {
  let database: TestDatabase;
  let policies: TenantPolicyRepository;
  let uploads: UploadRepository;
  let audit: AuditLog;
  beforeAll(async () => {
    database = await freshDatabase(kind);
    policies = new TenantPolicyRepository(database.db);
    uploads = new UploadRepository(database.db);
    audit = new AuditLog(database.db);
    const tenants = new TenantRepository(database.db);
    for (const t of ["acme", "globex", "initech"]) await tenants.create(t);
  });
  afterAll(async () => database?.drop());

  let n = 0;
  const newUpload = (tenantId: string, extra: Partial<NewUpload> = {}): NewUpload => {
    const id = `0000000000${(++n).toString(16).padStart(2, "0")}${"a".repeat(32)}`;
    return { id, tenantId, filename: "f.txt", declaredType: "text/plain", declaredSize: 10, metadata: {}, objectKey: objectKey("pending", tenantId, id), multipart: null, urlExpiresAt: new Date(Date.now() + 600_000), ...extra };
  };

  it("counts versions, refuses a change over a newer one, and audits each change with before and after", async () => {
    expect(await policies.get("acme")).toBeNull();
    const first = await policies.change("acme", { maxSize: 1000 }, { actorId: "adm_1", deployment: DEPLOYMENT });
    expect(first.before).toBeNull();
    expect(first.after).toMatchObject({ version: 1, policy: { maxSize: 1000 }, updatedBy: "adm_1" });
    const second = await policies.change("acme", { maxSize: 2000, acceptArchives: false }, { actorId: "adm_2", deployment: DEPLOYMENT, expectedVersion: 1 });
    expect(second.after.version).toBe(2);
    // A form that still shows version 1 is refused, and nothing is written.
    await expect(policies.change("acme", { maxSize: 5 }, { actorId: "adm_3", deployment: DEPLOYMENT, expectedVersion: 1 })).rejects.toMatchObject({ code: "policy_changed", details: { version: 2 } });
    expect((await policies.get("acme"))!.policy).toEqual({ maxSize: 2000, acceptArchives: false });
    await expect(policies.change("nobody", {}, { actorId: "adm_1", deployment: DEPLOYMENT })).rejects.toMatchObject({ code: "tenant_not_found" });

    const rows = (await audit.byAction("admin.tenant_policy_changed")).filter((r) => r.tenantId === "acme");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ actor: "admin", actorId: "adm_2", detail: { versionBefore: 1, version: 2, before: { maxSize: 1000 }, after: { maxSize: 2000, acceptArchives: false } } });
    expect(rows[0]!.detail.inForceAfter).toMatchObject({ maxSize: 2000, acceptArchives: false, allowedTypes: ["application/pdf", "image/png", "text/plain"], version: 2 });
  });

  it("lets one of two changes made from the same version through, and tells the other", async () => {
    await policies.change("initech", { maxSize: 10 }, { actorId: "adm_1", deployment: DEPLOYMENT });
    const results = await Promise.allSettled([1, 2, 3].map((i) => policies.change("initech", { maxSize: 100 * i }, { actorId: `adm_${i}`, deployment: DEPLOYMENT, expectedVersion: 1 })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((x) => x.status === "rejected")) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: "policy_changed" });
    expect((await policies.get("initech"))!.version).toBe(2);
  });

  it("records the policy in force on the upload and reads it back, digests included", async () => {
    const inForce = policyInForce(resolvePolicy(DEPLOYMENT, { maxSize: 2000, acceptArchives: false }), 2);
    const { upload } = await uploads.create({ ...newUpload("acme"), policy: inForce, stripImageMetadata: inForce.stripImageMetadata });
    expect(upload.policy).toEqual(inForce);
    const read = (await uploads.getById(upload.id))!;
    expect(read.policy).toEqual(inForce);
    expect(read.policy!.digest).toMatch(/^[0-9a-f]{64}$/);
    // The same terms, the same digests; other terms, another digest; terms the checks do not read leave checksDigest alone.
    expect(policyInForce(resolvePolicy(DEPLOYMENT, { acceptArchives: false, maxSize: 2000 }), 7).digest).toBe(inForce.digest);
    const longerUrls = policyInForce(resolvePolicy(DEPLOYMENT, { maxSize: 2000, acceptArchives: false, urlTtlSeconds: 900 }), 3);
    expect(longerUrls.digest).not.toBe(inForce.digest);
    expect(longerUrls.checksDigest).toBe(inForce.checksDigest);
    expect(policyInForce(resolvePolicy(DEPLOYMENT, { maxSize: 2001, acceptArchives: false }), 3).checksDigest).not.toBe(inForce.checksDigest);
    // An upload without one (declared before policies) reads as none.
    const { upload: old } = await uploads.create(newUpload("acme"));
    expect((await uploads.getById(old.id))!.policy).toBeNull();
  });

  it("purges a quarantine by the retention recorded on each upload, else the deployment's", async () => {
    const quarantine = async (tenantId: string, retentionDays: number | null, finishedDaysAgo: number) => {
      const inForce = retentionDays === null ? undefined : policyInForce(resolvePolicy(DEPLOYMENT, { quarantineRetentionDays: retentionDays }), 1);
      const { upload } = await uploads.create({ ...newUpload(tenantId), ...(inForce ? { policy: inForce } : {}) });
      await database.db("uploads").where({ id: upload.id }).update({ status: "quarantined", finished_at: Date.now() - finishedDaysAgo * DAY });
      return upload.id;
    };
    const shortDue = await quarantine("globex", 7, 8);
    const shortKept = await quarantine("globex", 7, 6);
    const longKept = await quarantine("globex", 3650, 400);
    const defaultDue = await quarantine("globex", null, 31);
    const defaultKept = await quarantine("globex", null, 29);
    const due = (await uploads.findPastRetention(new Date(), 30, 1000)).map((u) => u.id);
    expect(due).toEqual(expect.arrayContaining([shortDue, defaultDue]));
    for (const kept of [shortKept, longKept, defaultKept]) expect(due).not.toContain(kept);
  });

  it("writes only the verdict events the tenant's policy sends, on top of each endpoint's filter", async () => {
    const hooks = new WebhookRepository(database.db);
    await hooks.createEndpoint({ tenantId: "globex", url: "https://hooks.example.test/a", events: [...VERDICT_EVENT_TYPES], secret: `whsec_${"A".repeat(32)}` });
    const verdict = async (status: "verified" | "quarantined" | "expired") => {
      const { upload } = await uploads.create(newUpload("globex"));
      await database.db("uploads").where({ id: upload.id }).update({ status: status === "expired" ? "pending" : "deciding" });
      await uploads.transition(upload.id, status === "verified" ? "promote" : status === "quarantined" ? "quarantine" : "expire", status === "expired" ? "reaper" : "finalize", status === "quarantined" ? { verdict: "quarantine", reason: "malware" } : {});
      return (await database.db("webhook_events").where({ upload_id: upload.id })).map((e) => e.type);
    };
    expect(await verdict("quarantined")).toEqual(["upload.quarantined"]);
    await policies.change("globex", { webhookEvents: ["upload.verified"] }, { actorId: "adm_1", deployment: DEPLOYMENT });
    expect(await verdict("quarantined")).toEqual([]);
    expect(await verdict("expired")).toEqual([]);
    expect(await verdict("verified")).toEqual(["upload.verified"]);
    await policies.change("globex", { webhookEvents: [] }, { actorId: "adm_1", deployment: DEPLOYMENT });
    expect(await verdict("verified")).toEqual([]);
    // Back to the default (no list of its own): every event again.
    await policies.change("globex", {}, { actorId: "adm_1", deployment: DEPLOYMENT });
    expect(await verdict("expired")).toEqual(["upload.expired"]);
  });
});
