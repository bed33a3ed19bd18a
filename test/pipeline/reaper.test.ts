import { afterAll, describe, expect, it } from "vitest";
import { beforeAllOrFailEach } from "@intake/test";
import { objectKey } from "@intake/domain";
import { ORPHAN_MULTIPART_MIN_AGE_MS, Reaper, StageQueues } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { eicar, png } from "./fixtures.ts";
import { MiB, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The reaper against real storage. Time-based rules are driven by passing `now` to
 * reap(): the same code path as the schedule, without waiting hours.
 */
const ENV = { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB), MAX_UPLOAD_BYTES: String(64 * MiB) };

function reaperFor(s: PipelineStack) {
  const logs: string[] = [];
  const logger = createLogger({ level: "info", name: "reaper", destination: { write: (l: string) => void logs.push(l) } });
  const reaper = new Reaper({ repository: s.uploads, audit: s.audit, store: s.storage.store, queues: s.queues as StageQueues, logger, settings: s.config.reaper });
  return { reaper, logs };
}

async function createMultipart(s: PipelineStack, size: number): Promise<{ id: string; uploadId: string }> {
  const res = await fetch(`${s.apiUrl}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ filename: "big.zip", contentType: "application/zip", size }) });
  const body = (await res.json()) as { uploadId: string; upload: { id: string } };
  expect(res.status).toBe(201);
  // One part arrives, then the client goes away.
  const parts = await fetch(`${s.apiUrl}/v1/uploads/${body.upload.id}/parts`, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ partNumbers: [1] }) });
  const signed = (await parts.json()) as { parts: { url: string; headers: Record<string, string> }[] };
  const put = await fetch(signed.parts[0]!.url, { method: "PUT", headers: signed.parts[0]!.headers, body: new Uint8Array(5 * MiB) });
  expect(put.status).toBe(200);
  const row = await s.uploads.getById(body.upload.id);
  return { id: body.upload.id, uploadId: row!.multipart!.storageUploadId };
}

const later = (ms: number) => new Date(Date.now() + ms);

describe("reaper on fauxqs", () => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "pg", env: ENV });
  });
  afterAll(async () => s?.close());

  it("expires a pending upload whose URL expired (plus grace): one audit row for the one transition, however many passes race", async () => {
    const res = await fetch(`${s.apiUrl}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ filename: "never.png", contentType: "image/png", size: 100 }) });
    const { upload } = (await res.json()) as { upload: { id: string } };
    const { reaper } = reaperFor(s);
    // Not yet: the grace period has not passed.
    await reaper.reap(new Date());
    expect((await s.uploads.getById(upload.id))?.status).toBe("pending");

    // Three replicas' passes at once (and a fourth afterwards): the transition applies once.
    const at = later((s.config.policy.urlTtlSeconds + s.config.reaper.pendingGraceSeconds + 5) * 1000);
    const summaries = await Promise.all([reaper, reaperFor(s).reaper, reaperFor(s).reaper].map((r) => r.reap(at)));
    summaries.push(await reaper.reap(at));
    expect((await s.uploads.getById(upload.id))?.status).toBe("expired");
    expect(await s.auditActions(upload.id)).toEqual(["upload.created", "upload.expired"]);
    const expired = (await s.audit.forUpload(upload.id)).find((r) => r.action === "upload.expired");
    expect(expired).toMatchObject({ actor: "reaper", detail: { from: "pending", reasonDetail: expect.stringMatching(/^URL expired at .*; no object arrived$/) } });
    // Only the pass whose transition applied counts it (the only upload in this database yet).
    expect(summaries.map((x) => x.expired).sort()).toEqual([0, 0, 0, 1]);
  });

  it("aborts an abandoned multipart upload on its recorded id, says once that the sweep is unsupported", async () => {
    const { id, uploadId } = await createMultipart(s, 12 * MiB);
    const { reaper, logs } = reaperFor(s);
    const summary = await reaper.reap(later((s.config.reaper.multipartTtlSeconds + 5) * 1000));
    expect(summary.sweep).toBe("unsupported");
    expect(summary.multipartAborted).toBeGreaterThanOrEqual(1);
    expect((await s.uploads.getById(id))?.status).toBe("expired");
    // One transition, one abort: one row each, though both the expired-URL rule and the
    // multipart TTL rule matched it in the same pass.
    expect(await s.auditActions(id)).toEqual(["upload.created", "upload.expired", "reaper.multipart_aborted"]);
    const aborted = (await s.audit.forUpload(id)).find((r) => r.action === "reaper.multipart_aborted");
    expect(aborted?.detail.storageUploadId).toBe(uploadId);
    // The parts are gone: the upload can no longer be completed.
    await expect(s.storage.store.completeMultipart(objectKey("pending", s.tenant, id), uploadId, [{ partNumber: 1, eTag: "x" }])).rejects.toThrow();

    await reaper.reap(later((s.config.reaper.multipartTtlSeconds + 5) * 1000));
    expect(logs.filter((l) => l.includes("no ListMultipartUploads"))).toHaveLength(1);
  });

  it("purges quarantined objects past the retention period, keeping the row and the audit trail", async () => {
    const { id } = await s.upload(eicar(), { contentType: "text/plain" });
    const done = await s.waitFor(id, ["quarantined", "verified"]);
    expect(done.reason).toBe("malware");
    const { reaper } = reaperFor(s);
    await reaper.reap(later((s.config.reaper.quarantineRetentionDays - 1) * 86_400_000));
    expect(await s.storage.store.head(done.finalKey!)).not.toBeNull();

    const at = later((s.config.reaper.quarantineRetentionDays + 1) * 86_400_000);
    const summaries = await Promise.all([reaper, reaperFor(s).reaper].map((r) => r.reap(at)));
    expect(summaries.reduce((n, x) => n + x.purged, 0)).toBeGreaterThanOrEqual(1);
    expect(await s.storage.store.head(done.finalKey!)).toBeNull();
    expect((await s.uploads.getById(id))?.status).toBe("quarantined");
    const purged = await s.database.db("uploads").where({ id }).first("purged_at");
    expect(purged.purged_at).not.toBeNull();
    // Two passes purged the bytes at once; the purge is recorded once.
    expect((await s.auditActions(id)).filter((a) => a === "reaper.quarantine_purged")).toHaveLength(1);
  });
});

describe("reaper on Ceph RGW (real ListMultipartUploads, no S3 events)", () => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "sqlite", env: ENV });
  });
  afterAll(async () => s?.close());

  it("aborts an orphaned multipart upload that no row claims, and leaves a live one alone", async () => {
    const orphanKey = objectKey("pending", s.tenant, "orphan0123456789abcdef");
    const orphanId = await s.storage.store.createMultipart(orphanKey, "application/zip");
    const live = await createMultipart(s, 12 * MiB);
    const liveKey = objectKey("pending", s.tenant, live.id);
    const listed = await s.storage.store.listMultipartUploads("pending/");
    expect(listed.map((u) => u.uploadId)).toEqual(expect.arrayContaining([orphanId, live.uploadId]));

    const { reaper } = reaperFor(s);
    // A young orphan may be an upload whose row is being written: left alone.
    await reaper.reap(new Date());
    expect((await s.storage.store.listMultipartUploads("pending/")).map((u) => u.uploadId)).toContain(orphanId);

    const summary = await reaper.reap(later(ORPHAN_MULTIPART_MIN_AGE_MS + 60_000));
    expect(summary.sweep).toBe("done");
    expect(summary.orphansAborted).toBe(1);
    const remaining = await s.storage.store.listMultipartUploads("pending/");
    expect(remaining.map((u) => u.uploadId)).not.toContain(orphanId);
    expect(remaining.find((u) => u.key === liveKey)?.uploadId).toBe(live.uploadId);
    const audit = await s.audit.byAction("reaper.orphan_multipart_aborted");
    expect(audit.map((r) => [r.objectKey, r.detail.storageUploadId])).toEqual([[orphanKey, orphanId]]);

    // Past its TTL the live one is aborted too, through its row.
    await reaper.reap(later((s.config.reaper.multipartTtlSeconds + 5) * 1000));
    expect((await s.storage.store.listMultipartUploads("pending/")).map((u) => u.uploadId)).not.toContain(live.uploadId);
    expect((await s.uploads.getById(live.id))?.status).toBe("expired");
  });

  it("hands an object that arrived without any notice to the pipeline instead of expiring it", async () => {
    const bytes = png(3, 3);
    const { id } = await s.upload(bytes, { contentType: "image/png" }); // no complete, and RGW sends no event
    expect((await s.uploads.getById(id))?.status).toBe("pending");
    const { reaper } = reaperFor(s);
    const summary = await reaper.reap(later((s.config.policy.urlTtlSeconds + s.config.reaper.pendingGraceSeconds + 5) * 1000));
    expect(summary.arrivedLate).toBe(1);
    expect((await s.waitFor(id, ["verified", "quarantined", "expired"])).status).toBe("verified");
  });
});
