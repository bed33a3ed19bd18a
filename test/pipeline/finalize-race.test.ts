import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { createS3Client, S3ObjectStore, type ObjectStore } from "@intake/storage";
import { beforeAllOrFailEach, TEST_REGION, type TestStorage } from "@intake/test";
import { eicar, png, zip } from "./fixtures.ts";
import { MiB, startPipelineStack, type PipelineStack } from "./support/stack.ts";

// These uploads go through the stages (ONE_PASS_MAX_BYTES 0) and the finalize stage runs
// apart from the scan: what is tested here is the finalize stage's copy from the pending
// object, which is what runs when roles are deployed apart, or after a scan worker died
// between its verdict and its promotion (one-pass.test.ts covers the one-pass check).
const STAGED = { ONE_PASS_MAX_BYTES: "0" };

/**
 * The gap between finalize's HeadObject and its CopyObject: a client still holding a valid
 * PUT URL overwrites the pending object right then. The copy asks storage to copy only the
 * checked version (x-amz-copy-source-if-match), but that is a request, not a proof: Ceph
 * RGW 16 ignores the header and copies the new bytes. So finalize confirms what the copy
 * holds (its ETag against the checked one), on a staging key of its own, before anything
 * reaches verified/, and otherwise removes the copy and quarantines. Three ways the race plays out:
 * - storage refuses the copy (AWS S3; the local stand-in in front of fauxqs);
 * - the condition is lost on the wire (a proxy dropping it: what the store must survive);
 * - storage ignores it (Ceph RGW 16, seen here).
 */
const CASES = [
  ["fauxqs", "sqlite", "storage refuses the copy"],
  ["fauxqs", "pg", "storage refuses the copy"],
  ["fauxqs", "sqlite", "the copy condition is dropped on the wire"],
  ["rgw", "sqlite", "storage ignores the copy condition"],
] as const;

describe.each(CASES)("promotion when the object is replaced just before the copy (%s, %s: %s)", (storage, database, mode) => {
  let s: PipelineStack;
  let copies: { target: string; eTag: string | null }[] = [];
  let closeDropping = () => {};
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage, database, workerRoles: null, env: STAGED });
    let inner: ObjectStore = s.storage.store;
    if (mode === "the copy condition is dropped on the wire") {
      const dropping = storeDroppingCopyCondition(s.storage);
      inner = dropping.store;
      closeDropping = dropping.close;
    }
    const racing: ObjectStore = Object.create(inner);
    racing.copy = async (source, target, o) => {
      // The promoting copy is the one conditional on the checked ETag.
      if (o.ifMatch && source.startsWith("pending/")) {
        await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: source, Body: eicar(), ContentType: "image/png" }));
      }
      const result = await inner.copy(source, target, o);
      copies.push({ target, eTag: result.eTag });
      return result;
    };
    // Finalize in a worker of its own: a scan worker that also finalizes promotes from the
    // copy it made while scanning, and never copies the pending object at all.
    await s.startWorker("inspect,scan", { store: racing });
    await s.startWorker("finalize", { store: racing });
  });
  afterAll(async () => {
    await s?.close();
    closeDropping();
  });

  it("quarantines as checksum_mismatch and leaves nothing in verified/", async () => {
    copies = [];
    const { id } = await s.upload(png(16, 16), { contentType: "image/png", complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason }).toEqual({ status: "quarantined", reason: "checksum_mismatch" });
    expect(done.finalKey).toBe(objectKey("quarantine", s.tenant, id));
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
    const quarantined = await s.storage.store.head(objectKey("quarantine", s.tenant, id));
    expect(quarantined?.metadata).toMatchObject({ verdict: "quarantine", reason: "checksum_mismatch" });
    expect(quarantined?.contentType).toBe("application/octet-stream");
    if (mode === "storage refuses the copy") {
      // Refused with 412: the only copy made is the quarantine one.
      expect(copies.map((c) => c.target)).toEqual([objectKey("quarantine", s.tenant, id)]);
    } else {
      // Storage copied the replacement, to the run's staging key and never to verified/:
      // its ETag gave it away, and it was removed.
      expect(copies.map((c) => c.target)).toEqual([expect.stringMatching(new RegExp(`^${objectKey("quarantine", s.tenant, id)}\\.promoting-`)), objectKey("quarantine", s.tenant, id)]);
      expect(copies[0]!.eTag).not.toBe(done.checkedETag);
      expect(await s.storage.store.head(copies[0]!.target)).toBeNull();
      expect(done.reasonDetail).toMatch(/not the checked version/);
    }
  });
});

/** A store whose CopyObject requests lose x-amz-copy-source-if-match on the way. */
function storeDroppingCopyCondition(storage: TestStorage): { store: S3ObjectStore; close(): void } {
  const s3 = createS3Client({ region: TEST_REGION, endpoint: storage.endpoint, forcePathStyle: true, credentials: storage.credentials });
  s3.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) delete request.headers["x-amz-copy-source-if-match"];
      return next(args);
    },
    { step: "build", name: "dropCopySourceIfMatch" },
  );
  return { store: new S3ObjectStore(s3, storage.bucket, storage.store.capabilities), close: () => s3.destroy() };
}

/**
 * A multipart upload (ETag "<md5 of part md5s>-2") replaced, between finalize's HEAD and
 * its copy, by a single PUT of the same size: Ceph RGW ignores the copy condition and
 * copies the new bytes, whose ETag is a plain MD5. Neither the kept "-N" ETag nor the
 * scan's MD5 of the checked bytes matches it, so it is quarantined.
 */
describe("promotion when a multipart object is replaced by a single PUT of the same size (rgw)", () => {
  let s: PipelineStack;
  const copies: { target: string; eTag: string | null }[] = [];
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "sqlite", workerRoles: null, env: { ...STAGED, MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB) } });
    const inner = s.storage.store;
    const racing: ObjectStore = Object.create(inner);
    racing.copy = async (source, target, o) => {
      if (o.ifMatch && source.startsWith("pending/")) {
        const head = (await inner.head(source))!;
        const same = Buffer.concat([eicar(), Buffer.alloc(head.size - eicar().length, 0x20)]);
        await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: source, Body: same, ContentType: "application/zip" }));
      }
      const result = await inner.copy(source, target, o);
      copies.push({ target, eTag: result.eTag });
      return result;
    };
    // Finalize in a worker of its own: a scan worker that also finalizes promotes from the
    // copy it made while scanning, and never copies the pending object at all.
    await s.startWorker("inspect,scan", { store: racing });
    await s.startWorker("finalize", { store: racing });
  });
  afterAll(async () => s?.close());

  it("quarantines as checksum_mismatch and leaves nothing in verified/", async () => {
    const bytes = zip([{ name: "data.bin", data: randomBytes(6 * MiB) }]);
    const call = async (path: string, body: unknown) => {
      const res = await fetch(s.apiUrl + path, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    const created = await call("/v1/uploads", { filename: "data.zip", contentType: "application/zip", size: bytes.length });
    expect(created.body).toMatchObject({ kind: "multipart", partCount: 2 });
    const id = created.body.uploadId as string;
    const signed = await call(`/v1/uploads/${id}/parts`, { partNumbers: [1, 2] });
    const parts = [];
    for (const p of signed.body.parts as { partNumber: number; url: string; headers: Record<string, string> }[]) {
      const put = await fetch(p.url, { method: "PUT", headers: p.headers, body: bytes.subarray((p.partNumber - 1) * 5 * MiB, p.partNumber * 5 * MiB) });
      expect(put.status).toBe(200);
      parts.push({ partNumber: p.partNumber, etag: put.headers.get("etag")! });
    }
    expect((await call(`/v1/uploads/${id}/complete`, { parts })).status).toBe(200);

    const done = await s.waitFor(id, ["verified", "quarantined"], 60_000);
    expect({ status: done.status, reason: done.reason }).toEqual({ status: "quarantined", reason: "checksum_mismatch" });
    expect(done.checkedETag).toMatch(/-2$/);
    expect(copies[0]!.eTag).toMatch(/^[0-9a-f]{32}$/); // the replacement's plain MD5, copied all the same
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
    expect(await s.storage.store.head(copies[0]!.target)).toBeNull();
  });
});
