import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import type { ObjectStore } from "@intake/storage";
import { eicar, png } from "./fixtures.ts";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The gap between finalize's HeadObject and its CopyObject: a client still holding a valid
 * PUT URL overwrites the pending object right then. The copy carries the ETag of the checked
 * bytes (x-amz-copy-source-if-match), so storage refuses it with 412 and the upload is
 * quarantined instead. AWS S3 enforces that header; fauxqs does not, so the local S3
 * stand-in enforces it in front of fauxqs. Ceph RGW 16 was seen here to ignore it (it reads
 * a non-standard x-amz-copy-if-match), which is why this does not run on RGW.
 */
describe.each(["sqlite", "pg"] as const)("promotion when the object is replaced just before the copy (%s)", (database) => {
  let s: PipelineStack;
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database, workerRoles: null });
    const inner = s.storage.store;
    const racing: ObjectStore = Object.create(inner);
    racing.copy = async (source, target, o) => {
      if (target.startsWith("verified/")) {
        await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: source, Body: eicar(), ContentType: "image/png" }));
      }
      return inner.copy(source, target, o);
    };
    await s.startWorker("inspect,scan,finalize", { store: racing });
  });
  afterAll(async () => s?.close());

  it("quarantines as checksum_mismatch and never writes verified/", async () => {
    const bytes = png(16, 16);
    const { id } = await s.upload(bytes, { contentType: "image/png", complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason }).toEqual({ status: "quarantined", reason: "checksum_mismatch" });
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
    expect((await s.storage.store.head(objectKey("quarantine", s.tenant, id)))?.metadata).toMatchObject({ verdict: "quarantine", reason: "checksum_mismatch" });
  });
});
