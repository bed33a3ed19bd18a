import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import type { ObjectStore } from "@intake/storage";
import { eicar, pdf, png, zip } from "./fixtures.ts";
import { beforeAllOrFailEach, storeIgnoringIfMatch } from "@intake/test";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";

// These uploads go through the stages (ONE_PASS_MAX_BYTES 0): what is tested here is the
// window between inspect, scan and finalize that only the staged path has (one-pass.test.ts
// covers the one-pass check).
const STAGED = { ONE_PASS_MAX_BYTES: "0" };

/**
 * A client still holding a valid PUT URL overwrites the pending object after inspect
 * checked it and before scan reads it. Scan reads with If-Match on the ETag inspect
 * recorded on the row, so storage refuses the new bytes; and for storage that ignores the
 * header (here its requests lose it on the way), the store compares the ETag it was
 * served. Either way the upload is quarantined as
 * checksum_mismatch: bytes that never passed inspect are never scanned, let alone promoted.
 */
describe.each([
  ["fauxqs", "storage enforces If-Match"],
  ["rgw", "storage enforces If-Match"],
  ["fauxqs", "storage ignores If-Match"],
] as const)("an object replaced between inspect and scan (%s, %s)", (storage, mode) => {
  let s: PipelineStack;
  let closeIgnoring = () => {};
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage, database: "sqlite", workerRoles: null, env: STAGED });
    let inner = s.storage.store;
    if (mode === "storage ignores If-Match") {
      const ignoring = storeIgnoringIfMatch(s.storage);
      inner = ignoring.store;
      closeIgnoring = ignoring.close;
    }
    const racing: ObjectStore = Object.create(inner);
    racing.read = async (key, opts = {}) => {
      // The scan's read is the one without a range: overwrite right before it.
      if (!opts.range && key.startsWith("pending/")) {
        await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: key, Body: eicar(), ContentType: "image/png" }));
      }
      return inner.read(key, opts);
    };
    await s.startWorker("inspect,scan,finalize", { store: racing });
  });
  afterAll(async () => {
    await s?.close();
    closeIgnoring();
  });

  it("quarantines as checksum_mismatch and never writes verified/", async () => {
    const { id } = await s.upload(png(16, 16), { contentType: "image/png", complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason }).toEqual({ status: "quarantined", reason: "checksum_mismatch" });
    expect(done.checkedETag).toMatch(/^[0-9a-f]{32}$/);
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
    expect((await s.storage.store.head(objectKey("quarantine", s.tenant, id)))?.metadata).toMatchObject({ verdict: "quarantine", reason: "checksum_mismatch" });
  });
});

/**
 * Storage that names no ETag for what inspect read (a gateway that strips it): the row then
 * has no checked ETag, and nothing names the bytes that were checked. Reading "whatever is
 * there" and calling that the checked version would undo the rule above, so scan does not
 * read at all: the upload is quarantined (scan_error) and never promoted.
 */
describe.each(["fauxqs", "rgw"] as const)("an upload whose checked ETag is unknown (%s)", (storage) => {
  let s: PipelineStack;
  const fullReads: string[] = [];
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage, database: "sqlite", workerRoles: null, env: STAGED });
    const inner = s.storage.store;
    const etagless: ObjectStore = Object.create(inner);
    etagless.read = async (key, opts = {}) => {
      if (!opts.range) fullReads.push(key);
      const object = await inner.read(key, opts);
      return object && opts.range ? { ...object, eTag: null } : object;
    };
    await s.startWorker("inspect,scan,finalize", { store: etagless });
  });
  afterAll(async () => s?.close());

  it("is neither scanned nor promoted: quarantined as scan_error without a read of its bytes", async () => {
    const { id } = await s.upload(png(8, 8), { contentType: "image/png", complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason, checkedETag: done.checkedETag, sha256: done.sha256 }).toEqual({ status: "quarantined", reason: "scan_error", checkedETag: null, sha256: null });
    expect(done.reasonDetail).toMatch(/no checked ETag/);
    expect(fullReads).not.toContain(objectKey("pending", s.tenant, id));
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
  });
});

/**
 * An ETag is an MD5, and MD5 collisions can be made at will (chosen-prefix: any two
 * prefixes, one MD5, one size). A replacement built to collide with the inspected bytes
 * passes every ETag check: scan's If-Match, finalize's HEAD, the copy's ETag. Storage here
 * stands in for the collision by answering the checked ETag for the pending object
 * whatever it holds (exactly what a colliding replacement makes it answer); the bytes
 * are really replaced, by a clean file of another type (a PDF, where inspect typed a PNG
 * or a ZIP: the PNG walker of the active-content checks refuses it as invalid_content, the
 * ZIP has no structural check that would). Scan scans and hashes what it reads, so finalize's SHA-256 cannot catch this: the
 * scan itself must see that the bytes it read do not begin as the ones inspect typed.
 */
const COLLISIONS = [
  ["image/png", () => png(64, 64), "image/png"],
  ["application/zip", () => zip([{ name: "notes.txt", data: "x".repeat(5000) }]), "application/zip"],
] as const;

describe.each(COLLISIONS)("a %s replaced between inspect and scan by a PDF with the same ETag (an MD5 collision, rgw)", (declared, original, sniffed) => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "sqlite", workerRoles: null, env: STAGED });
    const inner = s.storage.store;
    const checkedOf = new Map<string, string>();
    const colliding: ObjectStore = Object.create(inner);
    const pretend = <T extends { eTag: string | null } | null>(key: string, o: T): T => (o && checkedOf.has(key) ? { ...o, eTag: checkedOf.get(key)! } : o);
    colliding.read = async (key, opts = {}) => {
      if (opts.range && key.startsWith("pending/")) {
        const head = await inner.read(key, opts);
        if (head?.eTag) checkedOf.set(key, head.eTag);
        return head;
      }
      if (key.startsWith("pending/") && checkedOf.has(key)) {
        const size = (await inner.head(key))!.size;
        await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: key, Body: sameSize(pdf(), size), ContentType: "image/png" }));
        const { ifMatch: _checked, ...rest } = opts;
        return pretend(key, await inner.read(key, rest));
      }
      return inner.read(key, opts);
    };
    colliding.head = async (key) => pretend(key, await inner.head(key));
    colliding.copy = async (source, target, o) => {
      const { ifMatch: _checked, ...rest } = o;
      return checkedOf.has(source) && o.ifMatch ? pretend(source, await inner.copy(source, target, rest)) : inner.copy(source, target, o);
    };
    await s.startWorker("inspect,scan,finalize", { store: colliding });
  });
  afterAll(async () => s?.close());

  it("quarantines as checksum_mismatch and never writes verified/", async () => {
    const { id } = await s.upload(original(), { contentType: declared, complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, sniffed: done.sniffedType }).toEqual({ status: "quarantined", sniffed });
    expect(["checksum_mismatch", "invalid_content"]).toContain(done.reason);
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
  });
});

/** `bytes` padded with spaces (or cut) to `size`. */
function sameSize(bytes: Buffer, size: number): Buffer {
  return bytes.length >= size ? bytes.subarray(0, size) : Buffer.concat([bytes, Buffer.alloc(size - bytes.length, 0x20)]);
}
