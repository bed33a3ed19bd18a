import { GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import { objectKey, uploadView, type Upload } from "@intake/domain";
import { AdminUserRepository } from "@intake/db";
import { createProducerConnection, ImageStripper, processFinalize, RecheckQueue, type StageDeps } from "@intake/pipeline";
import type { ObjectStore } from "@intake/storage";
import { createLogger } from "@intake/runtime";
import { beforeAllOrFailEach } from "@intake/test";
import { Readable } from "node:stream";
import { createClamdScanner } from "@intake/scanner";
import { eicar, pdf, plainText } from "./fixtures.ts";
import { HEIGHT, WIDTH, jpegWithSegments, leakedSecret, metadataOf, photo, pixel, pngHidingInPixels, pngWithTextChunks, type Format } from "./image-fixtures.ts";
import { quarantinedForScanError, review } from "./support/review.ts";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * Image metadata stripping against the whole stack (API, workers, clamd, storage, database):
 * with STRIP_IMAGE_METADATA on, a JPEG, PNG or WebP photo carrying GPS, camera serials and
 * XMP is served as a copy with none of it, turned upright by its EXIF orientation and with
 * its ICC profile kept; the row keeps both sha256s and says it was stripped. Bytes the
 * image library cannot decode are quarantined. Other files, and every upload when the
 * switch is off, are promoted byte for byte.
 */
const LIMITS = { IMAGE_MAX_PIXELS: String(1_000_000), IMAGE_MAX_BYTES: String(4 * 1024 * 1024) };
const TYPES: Record<Format, string> = { jpeg: "image/jpeg", png: "image/png", webp: "image/webp" };

/** The stripped copy as served, checked for every trace of the original's metadata. */
async function expectStripped(served: Buffer, format: Format) {
  const meta = await sharp(served).metadata();
  expect(meta.format).toBe(format);
  const found = await metadataOf(served);
  expect({ exifr: found.all ?? null, gps: found.gps ?? null }).toEqual({ exifr: null, gps: null });
  expect({ exif: !!meta.exif, xmp: !!meta.xmp, iptc: !!meta.iptc, comments: meta.comments ?? [] }).toEqual({ exif: false, xmp: false, iptc: false, comments: [] });
  expect(leakedSecret(served)).toBeNull();
  return meta;
}

async function expectUpright(served: Buffer) {
  const meta = await sharp(served).metadata();
  // Stored sideways with orientation 6: upright it is tall, the left (red) half on top.
  expect({ width: meta.width, height: meta.height, orientation: meta.orientation ?? 1 }).toEqual({ width: HEIGHT, height: WIDTH, orientation: 1 });
  const [top, bottom] = [await pixel(served, HEIGHT / 2, 4), await pixel(served, HEIGHT / 2, WIDTH - 5)];
  expect(top[0]).toBeGreaterThan(180);
  expect(top[2]).toBeLessThan(60);
  expect(bottom[2]).toBeGreaterThan(180);
  expect(bottom[0]).toBeLessThan(60);
  expect(meta.icc?.length ?? 0).toBeGreaterThan(0);
  expect(meta.icc).toEqual((await sharp(await photo("png")).metadata()).icc);
}

describe.each([
  { storage: "fauxqs", database: "sqlite", path: "one pass, then finalize" },
  { storage: "rgw", database: "pg", path: "the stages" },
] as const)("image metadata stripping on $storage and $database ($path)", ({ storage, database }) => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage, database, env: { STRIP_IMAGE_METADATA: "true", ...LIMITS, ...(storage === "rgw" ? { ONE_PASS_MAX_BYTES: "0" } : {}) } });
  });
  afterAll(async () => s?.close());

  async function verified(bytes: Buffer, contentType: string, filename = "photo") {
    const { id } = await s.upload(bytes, { contentType, filename, complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason, detail: done.reasonDetail }).toMatchObject({ status: "verified", reason: null });
    const download = await s.download(id);
    expect(download.status).toBe(200);
    return { upload: done, served: download.bytes };
  }

  it.each(["jpeg", "png", "webp"] as const)("a %s photo with GPS, serials and XMP is served without them, upright, with its ICC profile; both sha256s recorded", async (format) => {
    const original = await photo(format);
    // The fixture carries what it claims to.
    expect(leakedSecret(original)).not.toBeNull();
    if (format !== "webp") expect((await metadataOf(original)).gps?.latitude).toBeCloseTo(48.858, 2);
    // A WebP carries them as RIFF chunks of their own.
    if (format === "webp") expect([original.includes("EXIF"), original.includes("XMP ")]).toEqual([true, true]);
    const { upload, served } = await verified(original, TYPES[format], `photo.${format}`);
    await expectStripped(served, format);
    await expectUpright(served);
    expect(upload).toMatchObject({ metadataStripped: true, sha256: sha256Of(original), storedSize: original.length, servedSha256: sha256Of(served), servedSize: served.length });
    expect(upload.servedSha256).not.toBe(upload.sha256);
    // The API's view says so too.
    const res = await fetch(`${s.apiUrl}/v1/uploads/${upload.id}`, { headers: { authorization: `Bearer ${s.apiKey}` } });
    const view = ((await res.json()) as { upload: ReturnType<typeof uploadView> }).upload;
    expect(view.result).toMatchObject({ metadataStripped: true, sha256: sha256Of(original), servedSha256: sha256Of(served), servedSize: served.length });
  });

  it("a lossless WebP stays lossless: every pixel as it was, turned upright", async () => {
    const original = await photo("webp", { lossless: true });
    const { served } = await verified(original, "image/webp");
    await expectStripped(served, "webp");
    const upright = await sharp(original).autoOrient().raw().toBuffer();
    expect((await sharp(served).raw().toBuffer()).equals(upright)).toBe(true);
  });

  it("metadata hidden in PNG tEXt, zTXt, iTXt and eXIf chunks is gone", async () => {
    const original = await pngWithTextChunks();
    expect(leakedSecret(original)).not.toBeNull();
    const { upload, served } = await verified(original, "image/png");
    await expectStripped(served, "png");
    expect((await sharp(served).raw().toBuffer()).equals(await sharp(original).raw().toBuffer())).toBe(true);
    expect(upload.metadataStripped).toBe(true);
  });

  it("a JPEG COM segment and APP13 (IPTC), APP2 (FlashPix) and APP15 segments are gone", async () => {
    const original = await jpegWithSegments();
    expect((await sharp(original).metadata()).iptc).toBeDefined();
    const { served } = await verified(original, "image/jpeg");
    await expectStripped(served, "jpeg");
    const segments = markers(served);
    expect(segments.filter((m) => m === 0xfe || m === 0xed || m === 0xef || m === 0xe1)).toEqual([]);
  });

  it("a PNG whose pixels decode to bytes clamd never saw in the file (EICAR behind a row filter) is quarantined as malware found in the stripped copy, never served", async () => {
    const original = pngHidingInPixels(eicar());
    // The premise: the upload's bytes are clean for clamd, the stripped copy's are not.
    expect(original.includes(eicar())).toBe(false);
    expect((await createClamdScanner({ host: s.config.clamd.host, port: s.config.clamd.port }).scan(Readable.from([original]))).outcome).toBe("clean");
    const { id } = await s.upload(original, { contentType: "image/png", filename: "noise.png", complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    // The signature column names clamd's finding in the upload's own bytes (the verdict cache's
    // malware entries are made of it): here that was none, so the detail names the copy's.
    expect(done).toMatchObject({ status: "quarantined", reason: "malware", signature: null, finalKey: objectKey("quarantine", s.tenant, id), sha256: sha256Of(original) });
    expect(done.reasonDetail).toMatch(/^clamd found \S*EICAR\S* in the stripped copy/);
    expect((await s.download(id)).status).not.toBe(200);
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
  });

  it("a plain truncated JPEG (no end marker) is quarantined, by the structure check or the decoder", async () => {
    const { id } = await s.upload((await photo("jpeg")).subarray(0, 900), { contentType: "image/jpeg", complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done.status).toBe("quarantined");
    expect(["invalid_content", "image_undecodable"]).toContain(done.reason);
  });

  it("a non-image is promoted byte for byte, not stripped", async () => {
    for (const [bytes, type] of [[pdf(), "application/pdf"], [plainText(), "text/plain"]] as const) {
      const { upload, served } = await verified(bytes, type);
      expect(served.equals(bytes)).toBe(true);
      expect({ stripped: upload.metadataStripped, served: upload.servedSha256 }).toEqual({ stripped: false, served: null });
      expect(uploadView(upload).result).toMatchObject({ metadataStripped: false, servedSha256: sha256Of(bytes), servedSize: bytes.length });
    }
  });

  it.each([
    // Well-formed segment by segment (so the image-trailer check lets them by): only the decoder can tell.
    ["a truncated JPEG: its scan cut in half and an end marker appended", async () => truncatedWithEoi(), "image/jpeg", "image_undecodable"],
    ["a polyglot: JPEG magic bytes, an APP0 segment of HTML, an end marker and no image", async () => polyglot(), "image/jpeg", "image_undecodable"],
    ["a JPEG whose frame header names 7-bit samples", async () => badPrecision(await photo("jpeg")), "image/jpeg", "image_undecodable"],
    ["a PNG whose IDAT CRC is wrong", async () => badCrc(await photo("png")), "image/png", "image_undecodable"],
    ["a decompression bomb over IMAGE_MAX_PIXELS (3000x3000 of one colour, a few KB)", async () => sharp({ create: { width: 3000, height: 3000, channels: 3, background: "white" } }).png({ compressionLevel: 9 }).toBuffer(), "image/png", "image_too_large"],
    ["an image over IMAGE_MAX_BYTES", async () => Buffer.concat([await photo("png"), Buffer.alloc(4 * 1024 * 1024 + 1 - (await photo("png")).length)]), "image/png", "image_too_large"],
  ] as const)("%s is quarantined, nothing in verified/", async (_name, make, contentType, reason) => {
    const bytes = await make();
    const { id } = await s.upload(bytes, { contentType, complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    // A size check or content check may speak first for an image padded past its end; what
    // matters is that no decoder failure passes.
    if (reason === "image_too_large" && bytes.length > 4 * 1024 * 1024) expect(["image_too_large", "trailing_data"]).toContain(done.reason);
    else expect({ status: done.status, reason: done.reason }).toEqual({ status: "quarantined", reason });
    expect(done.status).toBe("quarantined");
    expect(done.reasonDetail).toBeTruthy();
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
    expect(await s.storage.store.head(objectKey("quarantine", s.tenant, id))).not.toBeNull();
  });
});

describe("with STRIP_IMAGE_METADATA off (the default)", () => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite" });
  });
  afterAll(async () => s?.close());

  it("a photo is promoted byte for byte, its metadata untouched", async () => {
    const original = await photo("jpeg");
    const { id } = await s.upload(original, { contentType: "image/jpeg", complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, stripImageMetadata: done.stripImageMetadata, metadataStripped: done.metadataStripped }).toEqual({ status: "verified", stripImageMetadata: false, metadataStripped: false });
    expect((await s.download(id)).bytes.equals(original)).toBe(true);
  });
});

/**
 * A released upload's recheck promotes it too (recheck.ts): as a stripped copy, from the bytes
 * it holds in memory or (ONE_PASS_MAX_BYTES 0) from its streamed staging copy; an image the
 * library cannot decode goes back to quarantine with that finding. Quarantined first for
 * scan_error (clamd away for every attempt), as the recheck tests do.
 */
describe.each<{ path: string; env: Record<string, string> }>([
  { path: "in memory", env: {} },
  { path: "streamed", env: { ONE_PASS_MAX_BYTES: "0" } },
])("the recheck of a released photo ($path; fauxqs, sqlite)", ({ env }) => {
  let s: PipelineStack;
  let admin: string;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: "ingest", env: { STRIP_IMAGE_METADATA: "true", JOB_ATTEMPTS: "3", JOB_BACKOFF_MS: "100", ...LIMITS, ...env } });
    admin = (await new AdminUserRepository(s.database.db).create({ email: "a@example.test", name: "Admin A", role: "admin", tenantIds: null })).id;
  });
  afterAll(async () => s?.close());

  async function releaseAndRecheck(u: Upload): Promise<Upload> {
    const worker = await s.startWorker("recheck");
    try {
      expect((await review(s).release(u, { id: admin, justification: "scanner outage" })).applied).toBe(true);
      const q = new RecheckQueue(createProducerConnection(s.config.redis), { prefix: s.env.QUEUE_PREFIX!, attempts: 3, backoffMs: 100 });
      try {
        expect(await q.requeue(u.id)).toBe("queued");
      } finally {
        await q.close();
      }
      return await s.waitFor(u.id, ["verified", "quarantined"]);
    } finally {
      await worker.close();
    }
  }

  it("a clean photo is released as a stripped copy, never as uploaded", async () => {
    const original = await photo("jpeg");
    const done = await releaseAndRecheck(await quarantinedForScanError(s, original, "image/jpeg", "photo.jpg"));
    expect(done.status).toBe("verified");
    const served = (await s.download(done.id)).bytes;
    await expectStripped(served, "jpeg");
    await expectUpright(served);
    expect(done).toMatchObject({ metadataStripped: true, sha256: sha256Of(original), servedSha256: sha256Of(served), servedSize: served.length });
  });

  it("an undecodable image goes back to quarantine as image_undecodable", async () => {
    const done = await releaseAndRecheck(await quarantinedForScanError(s, polyglot(), "image/jpeg"));
    expect({ status: done.status, reason: done.reason }).toEqual({ status: "quarantined", reason: "image_undecodable" });
    expect(await s.storage.store.head(objectKey("verified", s.tenant, done.id))).toBeNull();
  });
});

/**
 * The finalize stage's crash safety on the stripped path (rgw, the stages): a run that dies
 * after the stripped copy reached verified/ and the pending object went is finished by its
 * retry from that copy's own metadata; one that dies after quarantining an undecodable image
 * is finished as quarantined with the same reason. Every retry ends the same way.
 */
class WorkerDied extends Error {}

describe("stripped promotion when the worker dies (rgw, sqlite)", () => {
  let s: PipelineStack;
  let images: ImageStripper;
  const logger = createLogger({ level: "silent", name: "finalize" });
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "sqlite", workerRoles: null, env: { STRIP_IMAGE_METADATA: "true", ONE_PASS_MAX_BYTES: "0", ...LIMITS } });
    images = await ImageStripper.create({ maxPixels: 1_000_000, maxBytes: 4 * 1024 * 1024, concurrency: 1 }, createClamdScanner({ host: s.config.clamd.host, port: s.config.clamd.port }));
  });
  afterAll(async () => s?.close());

  const deps = (store: ObjectStore): StageDeps => ({ repository: s.uploads, store, queues: s.queues, logger, images });
  const job = (id: string, attemptsMade: number) => ({ data: { v: 1 as const, uploadId: id }, attemptsMade, opts: { attempts: 5 } });

  async function decided(bytes: Buffer, contentType: string): Promise<Upload> {
    await s.startWorker("inspect,scan");
    try {
      const { id } = await s.upload(bytes, { contentType, complete: true });
      const upload = await s.waitFor(id, ["deciding", "quarantined", "verified"]);
      expect({ status: upload.status, verdict: upload.verdict }).toEqual({ status: "deciding", verdict: "clean" });
      return upload;
    } finally {
      await s.stopWorkers();
    }
  }

  function dyingAfterPendingDelete(upload: Upload): ObjectStore {
    const inner = s.storage.store;
    const dying: ObjectStore = Object.create(inner);
    dying.delete = async (key) => {
      await inner.delete(key);
      if (key === upload.objectKey) throw new WorkerDied("the worker died after deleting the pending object");
    };
    return dying;
  }

  async function object(key: string): Promise<Buffer> {
    const got = await s.storage.s3.send(new GetObjectCommand({ Bucket: s.storage.bucket, Key: key }));
    return Buffer.from(await got.Body!.transformToByteArray());
  }

  it("no worker without the image library promotes it: the run fails, nothing moves", async () => {
    const upload = await decided(await photo("jpeg"), "image/jpeg");
    await expect(processFinalize({ ...deps(s.storage.store), images: undefined }, job(upload.id, 0))).rejects.toThrow(/no image stripper/);
    expect((await s.uploads.getById(upload.id))!.status).toBe("deciding");
    expect(await s.storage.store.head(objectKey("verified", upload.tenantId, upload.id))).toBeNull();
    expect(await s.storage.store.head(upload.objectKey)).not.toBeNull();
    await processFinalize(deps(s.storage.store), job(upload.id, 1));
    expect((await s.uploads.getById(upload.id))!).toMatchObject({ status: "verified", metadataStripped: true });
  });

  it("dies after the stripped copy and the pending delete: the retry settles verified with the served sha256, once", async () => {
    const original = await photo("jpeg");
    const upload = await decided(original, "image/jpeg");
    await expect(processFinalize(deps(dyingAfterPendingDelete(upload)), job(upload.id, 0))).rejects.toBeInstanceOf(WorkerDied);
    expect((await s.uploads.getById(upload.id))!.status).toBe("deciding");
    await processFinalize(deps(s.storage.store), job(upload.id, 1));
    await processFinalize(deps(s.storage.store), job(upload.id, 2));
    const after = (await s.uploads.getById(upload.id))!;
    const served = await object(objectKey("verified", upload.tenantId, upload.id));
    await expectStripped(served, "jpeg");
    expect(after).toMatchObject({ status: "verified", metadataStripped: true, sha256: sha256Of(original), servedSha256: sha256Of(served), servedSize: served.length });
    expect((await s.auditActions(upload.id)).filter((a) => a === "upload.verified")).toHaveLength(1);
  });

  it("a run that dies before the pending delete is redone by its retry: the same stripped bytes", async () => {
    const original = await photo("png");
    const upload = await decided(original, "image/png");
    const inner = s.storage.store;
    const dying: ObjectStore = Object.create(inner);
    dying.delete = async (key) => {
      if (key === upload.objectKey) throw new WorkerDied("the worker died before deleting the pending object");
      await inner.delete(key);
    };
    await expect(processFinalize(deps(dying), job(upload.id, 0))).rejects.toBeInstanceOf(WorkerDied);
    const first = await object(objectKey("verified", upload.tenantId, upload.id));
    await processFinalize(deps(inner), job(upload.id, 1));
    const after = (await s.uploads.getById(upload.id))!;
    expect(after).toMatchObject({ status: "verified", servedSha256: sha256Of(first) });
    expect(sha256Of(await object(objectKey("verified", upload.tenantId, upload.id)))).toBe(sha256Of(first));
    expect(await inner.head(upload.objectKey)).toBeNull();
  });

  it("dies after quarantining an undecodable image: the retry records image_undecodable, not a pass", async () => {
    const upload = await decided(badCrc(await photo("png")), "image/png");
    await expect(processFinalize(deps(dyingAfterPendingDelete(upload)), job(upload.id, 0))).rejects.toBeInstanceOf(WorkerDied);
    await processFinalize(deps(s.storage.store), job(upload.id, 1));
    const after = (await s.uploads.getById(upload.id))!;
    expect({ status: after.status, reason: after.reason, metadataStripped: after.metadataStripped }).toEqual({ status: "quarantined", reason: "image_undecodable", metadataStripped: false });
    expect(after.reasonDetail).toMatch(/decode/);
    expect(await s.storage.store.head(objectKey("verified", upload.tenantId, upload.id))).toBeNull();
  });
});

/** A noisy JPEG (a real amount of entropy-coded data) cut halfway through its scan, then FF D9. */
async function truncatedWithEoi(): Promise<Buffer> {
  const full = await sharp({ create: { width: 256, height: 256, channels: 3, background: "black", noise: { type: "gaussian", mean: 128, sigma: 50 } } }).jpeg().toBuffer();
  const sos = full.indexOf(Buffer.from([0xff, 0xda]));
  let cut = sos + Math.floor((full.length - sos) / 2);
  while (full[cut - 1] === 0xff) cut--;
  return Buffer.concat([full.subarray(0, cut), Buffer.from([0xff, 0xd9])]);
}

function polyglot(): Buffer {
  const html = Buffer.from("<html><script>alert(document.cookie)</script></html>".repeat(8));
  const length = Buffer.alloc(2);
  length.writeUInt16BE(html.length + 2);
  return Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), length, html, Buffer.from([0xff, 0xd9])]);
}

function badPrecision(jpeg: Buffer): Buffer {
  const bad = Buffer.from(jpeg);
  bad[bad.indexOf(Buffer.from([0xff, 0xc0])) + 4] = 7;
  return bad;
}

/** The PNG with the CRC of its first IDAT chunk flipped. */
function badCrc(png: Buffer): Buffer {
  const bad = Buffer.from(png);
  const at = bad.indexOf("IDAT");
  const length = bad.readUInt32BE(at - 4);
  bad[at + 4 + length] ^= 0xff;
  return bad;
}

/** The JPEG's marker bytes up to the start of scan. */
function markers(jpeg: Buffer): number[] {
  const out: number[] = [];
  let at = 2;
  while (at + 4 <= jpeg.length && jpeg[at] === 0xff) {
    const marker = jpeg[at + 1]!;
    out.push(marker);
    if (marker === 0xda) break;
    at += 2 + jpeg.readUInt16BE(at + 2);
  }
  return out;
}
