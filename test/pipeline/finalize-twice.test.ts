import { PutObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { objectKey, type Upload } from "@intake/domain";
import { processFinalize, type StageDeps } from "@intake/pipeline";
import type { ObjectStore } from "@intake/storage";
import { createLogger } from "@intake/runtime";
import { beforeAllOrFailEach } from "@intake/test";
import { eicar, png } from "./fixtures.ts";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

// These uploads go through the stages (ONE_PASS_MAX_BYTES 0): what is tested here is the
// window between inspect, scan and finalize that only the staged path has (one-pass.test.ts
// covers the one-pass check).
const STAGED = { ONE_PASS_MAX_BYTES: "0" };

/**
 * Finalize runs at least once, not exactly once: a job whose worker stalled past its lock
 * runs again while the first run goes on, and after a Redis loss the reaper re-queues a
 * job that is in fact still running. Here two finalize runs of one clean upload overlap on
 * Ceph RGW (which ignores x-amz-copy-source-if-match) while the client replaces the pending
 * object: run 1 copies the checked bytes, the client PUTs EICAR, run 2 copies EICAR and its
 * worker dies before it can look at what it copied; run 1 then promotes. And a single run
 * whose worker dies right after copying a replacement. In neither may verified/ ever hold
 * bytes other than the checked ones: a CDN or a presigned GET made elsewhere serves that
 * key whatever the row says.
 */
class WorkerDied extends Error {}

describe("finalize runs that overlap or die after the copy (rgw, sqlite)", () => {
  let s: PipelineStack;
  const logger = createLogger({ level: "silent", name: "finalize" });
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "sqlite", workerRoles: null, env: STAGED });
  });
  afterAll(async () => s?.close());

  /** An upload with its clean verdict recorded (status deciding), and no finalize worker. */
  async function decidedUpload(): Promise<{ upload: Upload; bytes: Buffer }> {
    const bytes = png(12, 12, Math.floor(Math.random() * 200));
    await s.startWorker("inspect,scan");
    try {
      const { id } = await s.upload(bytes, { contentType: "image/png", complete: true });
      const upload = await s.waitFor(id, ["deciding", "quarantined", "verified"]);
      expect({ status: upload.status, verdict: upload.verdict }).toEqual({ status: "deciding", verdict: "clean" });
      return { upload, bytes };
    } finally {
      await s.stopWorkers();
    }
  }

  const deps = (store: ObjectStore): StageDeps => ({ repository: s.uploads, store, queues: s.queues, logger });
  const replacePending = (key: string) => s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: key, Body: eicar(), ContentType: "image/png" }));
  /** The copy that promotes is the one conditional on the checked ETag. */
  const promoting = (o: { ifMatch?: string }) => o.ifMatch !== undefined;

  async function verifiedBytes(upload: Upload): Promise<Buffer | null> {
    const key = objectKey("verified", upload.tenantId, upload.id);
    if (!(await s.storage.store.head(key))) return null;
    const got = await s.storage.s3.send(new GetObjectCommand({ Bucket: s.storage.bucket, Key: key }));
    return Buffer.from(await got.Body!.transformToByteArray());
  }

  it("two overlapping runs, the second copying a replacement: verified/ holds the checked bytes or nothing", async () => {
    const { upload, bytes } = await decidedUpload();
    const inner = s.storage.store;
    let replaced!: () => void;
    const replacedDone = new Promise<void>((r) => (replaced = r));
    let secondCopied!: () => void;
    const secondCopiedDone = new Promise<void>((r) => (secondCopied = r));
    let secondLooked!: () => void;
    const secondLookedDone = new Promise<void>((r) => (secondLooked = r));

    const first: ObjectStore = Object.create(inner);
    first.copy = async (source, target, o) => {
      const result = await inner.copy(source, target, o);
      if (promoting(o) && source === upload.objectKey) {
        // Both runs have seen the checked version before the client replaces it.
        await secondLookedDone;
        await replacePending(source);
        replaced();
        await secondCopiedDone;
      }
      return result;
    };
    const second: ObjectStore = Object.create(inner);
    second.head = async (key) => {
      const head = await inner.head(key);
      if (key === upload.objectKey) secondLooked();
      return head;
    };
    second.copy = async (source, target, o) => {
      if (!promoting(o)) return inner.copy(source, target, o);
      await replacedDone;
      await inner.copy(source, target, o);
      secondCopied();
      throw new WorkerDied("the second run's worker died right after its copy");
    };

    const runs = await Promise.allSettled([processFinalize(deps(first), { data: { v: 1, uploadId: upload.id }, attemptsMade: 0, opts: { attempts: 5 } }), processFinalize(deps(second), { data: { v: 1, uploadId: upload.id }, attemptsMade: 0, opts: { attempts: 5 } })]);
    expect(runs[1]).toMatchObject({ status: "rejected", reason: expect.any(WorkerDied) });

    const after = (await s.uploads.getById(upload.id))!;
    const held = await verifiedBytes(upload);
    expect(held === null ? null : sha256Of(held)).toBe(held === null ? null : sha256Of(bytes));
    if (after.status === "verified") expect(held && sha256Of(held)).toBe(after.sha256);
    // One status change happened, so one row says so, whichever run made it.
    const finished = (await s.auditActions(upload.id)).filter((a) => a === "upload.verified" || a === "upload.quarantined");
    expect(finished).toEqual([`upload.${after.status}`]);
  });

  it("a run whose worker dies right after copying a replacement leaves nothing in verified/, and its retry quarantines", async () => {
    const { upload, bytes } = await decidedUpload();
    const inner = s.storage.store;
    const dying: ObjectStore = Object.create(inner);
    dying.copy = async (source, target, o) => {
      if (promoting(o) && source === upload.objectKey) {
        await replacePending(source);
        await inner.copy(source, target, o);
        throw new WorkerDied("the worker died right after the copy");
      }
      return inner.copy(source, target, o);
    };
    await expect(processFinalize(deps(dying), { data: { v: 1, uploadId: upload.id }, attemptsMade: 0, opts: { attempts: 5 } })).rejects.toBeInstanceOf(WorkerDied);
    // The row still says deciding: nothing under verified/ may be other than the checked bytes meanwhile.
    const held = await verifiedBytes(upload);
    expect(held === null ? null : sha256Of(held)).toBe(held === null ? null : sha256Of(bytes));

    await processFinalize(deps(inner), { data: { v: 1, uploadId: upload.id }, attemptsMade: 1, opts: { attempts: 5 } });
    const after = (await s.uploads.getById(upload.id))!;
    expect({ status: after.status, reason: after.reason }).toEqual({ status: "quarantined", reason: "checksum_mismatch" });
    expect(await verifiedBytes(upload)).toBeNull();
  });

  it("a run that dies after a confirmed copy is finished by its retry: verified once, one audit row", async () => {
    const { upload, bytes } = await decidedUpload();
    const inner = s.storage.store;
    const dying: ObjectStore = Object.create(inner);
    dying.delete = async (key) => {
      await inner.delete(key);
      if (key === upload.objectKey) throw new WorkerDied("the worker died after deleting the pending object");
    };
    await expect(processFinalize(deps(dying), { data: { v: 1, uploadId: upload.id }, attemptsMade: 0, opts: { attempts: 5 } })).rejects.toBeInstanceOf(WorkerDied);
    expect((await s.uploads.getById(upload.id))!.status).toBe("deciding");
    await processFinalize(deps(inner), { data: { v: 1, uploadId: upload.id }, attemptsMade: 1, opts: { attempts: 5 } });
    await processFinalize(deps(inner), { data: { v: 1, uploadId: upload.id }, attemptsMade: 2, opts: { attempts: 5 } });
    const after = (await s.uploads.getById(upload.id))!;
    expect({ status: after.status, finalKey: after.finalKey }).toEqual({ status: "verified", finalKey: objectKey("verified", upload.tenantId, upload.id) });
    expect(sha256Of((await verifiedBytes(upload))!)).toBe(sha256Of(bytes));
    expect((await s.auditActions(upload.id)).filter((a) => a === "upload.verified")).toHaveLength(1);
  });
});

/**
 * An ETag is an MD5, and MD5 collisions can be made at will (chosen-prefix collisions: two
 * files of one size, any two prefixes, one MD5). A replacement built to collide with the
 * checked bytes has their ETag: If-Match and x-amz-copy-source-if-match both pass it, and
 * the copy's ETag equals the checked one. Here the collision is stood in for by the
 * copy's answer (the checked ETag for other bytes, exactly what a colliding replacement
 * gives on Ceph RGW); the bytes copied are real and different. Only a SHA-256 of what was
 * copied can tell: storage computes none on RGW, so finalize reads its staging copy back.
 */
describe("promotion of a replacement with the checked ETag (an MD5 collision, rgw)", () => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "sqlite", workerRoles: null, env: STAGED });
  });
  afterAll(async () => s?.close());

  it("quarantines as checksum_mismatch: the copy's SHA-256 is not the scanned one", async () => {
    const logger = createLogger({ level: "silent", name: "finalize" });
    await s.startWorker("inspect,scan");
    const { id } = await s.upload(png(10, 10), { contentType: "image/png", complete: true });
    const upload = await s.waitFor(id, ["deciding", "quarantined", "verified"]);
    await s.stopWorkers();
    expect({ status: upload.status, verdict: upload.verdict }).toEqual({ status: "deciding", verdict: "clean" });

    const inner = s.storage.store;
    const colliding: ObjectStore = Object.create(inner);
    colliding.copy = async (source, target, o) => {
      if (!o.ifMatch || source !== upload.objectKey) return inner.copy(source, target, o);
      await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: source, Body: eicar(), ContentType: "image/png" }));
      const result = await inner.copy(source, target, o);
      expect(result.eTag).not.toBe(upload.checkedETag);
      return { ...result, eTag: upload.checkedETag };
    };
    await processFinalize({ repository: s.uploads, store: colliding, queues: s.queues, logger }, { data: { v: 1, uploadId: id }, attemptsMade: 0, opts: { attempts: 5 } });
    const after = (await s.uploads.getById(id))!;
    expect({ status: after.status, reason: after.reason }).toEqual({ status: "quarantined", reason: "checksum_mismatch" });
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
  });
});
