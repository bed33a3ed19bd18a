import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "@intake/test";
import { ApiKeyRepository, AuditLog, UploadRepository, type NewUpload } from "./index.ts";

function newUpload(tenantId: string, over: Partial<NewUpload> = {}): NewUpload {
  const id = randomUUID().replace(/-/g, "");
  return {
    id,
    tenantId,
    filename: "report.pdf",
    declaredType: "application/pdf",
    declaredSize: 1234,
    metadata: { source: "test" },
    objectKey: `pending/${tenantId}/${id}`,
    multipart: null,
    urlExpiresAt: new Date(Date.now() + 600_000),
    ...over,
  };
}

describe.each(DATABASE_KINDS)("upload repository on %s", (kind) => {
  let t: TestDatabase;
  let uploads: UploadRepository;
  beforeAll(async () => {
    t = await freshDatabase(kind);
    uploads = new UploadRepository(t.db);
    const keys = new ApiKeyRepository(t.db);
    await keys.ensureTenant("acme");
    await keys.ensureTenant("other");
  });
  afterAll(async () => t?.drop());

  it("writes a new upload as pending with an audit row", async () => {
    const { upload, created } = await uploads.create(newUpload("acme"));
    expect(created).toBe(true);
    expect(upload.status).toBe("pending");
    expect(upload.metadata).toEqual({ source: "test" });
    const audit = await new AuditLog(t.db).forUpload(upload.id);
    expect(audit.map((a) => a.action)).toEqual(["upload.created"]);
  });

  it("returns the first upload for a repeated idempotency key and refuses a different request under it", async () => {
    const first = await uploads.create(newUpload("acme", { idempotency: { key: "k-1", fingerprint: "f1" } }));
    const again = await uploads.create(newUpload("acme", { idempotency: { key: "k-1", fingerprint: "f1" } }));
    expect(again.created).toBe(false);
    expect(again.upload.id).toBe(first.upload.id);
    await expect(uploads.create(newUpload("acme", { idempotency: { key: "k-1", fingerprint: "f2" } }))).rejects.toMatchObject({ code: "idempotency_key_reused" });
    // The same key under another tenant is another upload.
    const other = await uploads.create(newUpload("other", { idempotency: { key: "k-1", fingerprint: "f1" } }));
    expect(other.created).toBe(true);
  });

  it("applies a transition once: concurrent duplicates see applied=false", async () => {
    const { upload } = await uploads.create(newUpload("acme"));
    const results = await Promise.all([1, 2, 3, 4].map(() => uploads.transition(upload.id, "arrived", "ingest", { storedSize: 1234 })));
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    const after = await uploads.getById(upload.id);
    expect(after?.status).toBe("uploaded");
    expect(after?.uploadedAt).toBeInstanceOf(Date);
    const refused = await uploads.transition(upload.id, "expire", "reaper");
    expect(refused.applied).toBe(false);
    expect(refused.upload?.status).toBe("uploaded");
  });

  it("keeps tenants apart and pages with a cursor", async () => {
    for (let i = 0; i < 5; i++) await uploads.create(newUpload("other"));
    expect(await uploads.get("acme", (await uploads.list("other", { limit: 1 })).items[0]!.id)).toBeNull();
    const seen: string[] = [];
    let cursor: { createdAt: number; id: string } | undefined;
    do {
      const page = await uploads.list("other", { limit: 2, cursor });
      seen.push(...page.items.map((u) => u.id));
      cursor = page.next ?? undefined;
    } while (cursor);
    expect(seen).toHaveLength(6);
    expect(new Set(seen).size).toBe(6);
  });
});

describe.each(DATABASE_KINDS)("api keys on %s", (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase(kind);
  });
  afterAll(async () => t?.drop());

  it("authenticates a created key, stores only a hash, and refuses it once revoked", async () => {
    const keys = new ApiKeyRepository(t.db);
    const { key, info } = await keys.create("acme", "ci");
    expect(await keys.authenticate(key)).toEqual({ tenantId: "acme", keyId: info.id });
    const row = await t.db("api_keys").where({ id: info.id }).first();
    expect(JSON.stringify(row)).not.toContain(key.split("_").at(-1));
    expect(await keys.authenticate(key.slice(0, -1) + (key.endsWith("A") ? "B" : "A"))).toBeNull();
    await keys.revoke(info.id);
    expect(await keys.authenticate(key)).toBeNull();
  });
});
