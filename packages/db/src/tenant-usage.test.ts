import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "./testing.ts";
import { ApiKeyRepository, tenantUsage, UploadRepository, type NewUpload } from "./index.ts";

/**
 * The daily quota across midnight UTC with two API processes whose clocks differ by a few
 * seconds (NTP keeps them close, never equal). The one ahead opens the new day; the one
 * behind must count into that day, not reset it to its own: alternating between the two
 * reset the count on every create, so the quota did not hold for as long as they disagreed.
 */
const quotas = { pendingUploads: 100, pendingBytes: 1_000_000, uploadsPerDay: 3 };
const MIDNIGHT = Date.parse("2026-12-02T00:00:00Z");

function upload(tenantId: string): NewUpload {
  const id = randomUUID().replace(/-/g, "");
  return { id, tenantId, filename: "a.pdf", declaredType: "application/pdf", declaredSize: 10, metadata: {}, objectKey: `pending/${tenantId}/${id}`, multipart: null, urlExpiresAt: new Date(MIDNIGHT + 600_000) };
}

describe.each(DATABASE_KINDS)("daily quota across midnight on %s", (kind) => {
  let t: TestDatabase;
  let uploads: UploadRepository;
  beforeAll(async () => {
    t = await freshDatabase(kind);
    uploads = new UploadRepository(t.db);
  });
  afterAll(async () => t?.drop());

  it("a process whose clock is behind counts into the day already opened, and cannot reset it", async () => {
    const tenant = `skew${kind}`;
    await new ApiKeyRepository(t.db).ensureTenant(tenant);
    const ahead = new Date(MIDNIGHT + 2_000);
    const behind = new Date(MIDNIGHT - 2_000);
    await uploads.create(upload(tenant), new Date(MIDNIGHT - 60_000), quotas); // yesterday
    await uploads.create(upload(tenant), ahead, quotas); // the new day: 1
    await uploads.create(upload(tenant), behind, quotas); // still the new day: 2
    await uploads.create(upload(tenant), ahead, quotas); // 3: the new day's quota is used up
    expect(await tenantUsage(t.db, tenant)).toMatchObject({ day: Math.floor(ahead.getTime() / 86_400_000), uploadsToday: 3 });
    for (const now of [behind, ahead, behind]) {
      const refused = await uploads.create(upload(tenant), now, quotas).then(() => null, (err: unknown) => err);
      expect(refused).toMatchObject({ code: "quota_uploads_per_day", details: { current: 3, resetsAt: "2026-12-03T00:00:00.000Z" } });
    }
    expect(await tenantUsage(t.db, tenant)).toMatchObject({ uploadsToday: 3, pendingUploads: 4 });
  });
});
