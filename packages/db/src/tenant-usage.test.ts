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

/**
 * A released upload goes quarantined -> rechecking -> verified|quarantined. Its share of
 * the quotas was given back when it was first quarantined; the release and the recheck's
 * verdict must not give it back again (the counters are clamped at zero, so the test keeps
 * another upload open: a second release would show as one open upload too few).
 */
describe.each(DATABASE_KINDS)("quotas across a release on %s", (kind) => {
  let t: TestDatabase;
  let uploads: UploadRepository;
  beforeAll(async () => {
    t = await freshDatabase(kind);
    uploads = new UploadRepository(t.db);
  });
  afterAll(async () => t?.drop());

  it.each(["promote", "quarantine"] as const)("counts the quarantined upload once when its recheck ends with %s", async (end) => {
    const tenant = `release${kind}${end}`;
    await new ApiKeyRepository(t.db).ensureTenant(tenant);
    const now = new Date(MIDNIGHT);
    const open = (await uploads.create(upload(tenant), now, quotas)).upload;
    const caught = (await uploads.create(upload(tenant), now, quotas)).upload;
    expect(await tenantUsage(t.db, tenant)).toMatchObject({ pendingUploads: 2, pendingBytes: 20 });
    for (const event of ["arrived", "inspect", "decide", "quarantine"] as const) expect((await uploads.transition(caught.id, event, "scan")).applied).toBe(true);
    expect(await tenantUsage(t.db, tenant)).toMatchObject({ pendingUploads: 1, pendingBytes: 10 });
    expect((await uploads.transition(caught.id, "release", "admin")).applied).toBe(true);
    expect((await uploads.transition(caught.id, end, "recheck")).applied).toBe(true);
    // Released again and rechecked again: still nothing given back twice.
    if (end === "quarantine") {
      await uploads.transition(caught.id, "release", "admin");
      await uploads.transition(caught.id, "promote", "recheck");
    }
    expect(await tenantUsage(t.db, tenant)).toMatchObject({ pendingUploads: 1, pendingBytes: 10 });
    expect((await uploads.getById(open.id))?.status).toBe("pending");
  });
});
