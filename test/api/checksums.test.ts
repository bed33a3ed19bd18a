import { createHash } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { AWS_S3_CAPABILITIES, createS3Client, S3ObjectStore } from "@intake/storage";
import { beforeAllOrFailEach } from "@intake/test";
import { MiB, putTo, queryOf, randomBytesOf, startApiUnderTest, type ApiUnderTest } from "./harness.ts";
import { startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";
import { startHttpTap, type HttpTap } from "../support/http-tap.ts";

/**
 * Checksums from the client to storage (issue 11 section 3). The client declares the md5
 * (base64) and/or sha256 (hex) of the whole object on create, or of each part on the parts
 * call; the API signs them into the URL (Content-MD5, x-amz-checksum-sha256) and returns
 * them as headers the PUT must send. Ceph RGW enforces Content-MD5, so there storage itself
 * refuses tampered bytes; fauxqs checks nothing, so there the pipeline's own sha256 of the
 * stored bytes is what catches them.
 */
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("base64");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const b64 = (hex: string) => Buffer.from(hex, "hex").toString("base64");
/** Same length, one byte changed: what a corrupted transfer or a swapped file looks like. */
const tampered = (b: Uint8Array, at = 0) => Uint8Array.from(b, (x, i) => (i === at ? x ^ 0xff : x));
const PART = 5 * MiB;
const MULTIPART_ENV = { MULTIPART_THRESHOLD_BYTES: String(PART), PART_SIZE_BYTES: String(PART) };

describe("checksums bound into presigned URLs, on Ceph RGW (storage refuses other bytes)", () => {
  let t: ApiUnderTest;
  let key: string;
  beforeAllOrFailEach(async () => {
    t = await startApiUnderTest({ storage: "rgw", database: "sqlite", env: MULTIPART_ENV });
    key = await t.newKey("acme");
  });
  afterAll(async () => t?.close());

  it("single PUT: md5 and sha256 signed in and returned as headers; tampered bytes get 400 BadDigest, a missing checksum header 403", async () => {
    const bytes = randomBytesOf(4096);
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: bytes.length, md5: md5(bytes), sha256: sha256(bytes) } });
    expect(created.status).toBe(201);
    expect(created.body.headers).toEqual({ "Content-Type": "image/png", "Content-MD5": md5(bytes), "x-amz-checksum-sha256": b64(sha256(bytes)) });
    expect(queryOf(created.body.url).get("X-Amz-SignedHeaders")!.split(";")).toEqual(["content-length", "content-md5", "content-type", "host", "x-amz-checksum-sha256"]);

    const bad = await putTo(created.body, tampered(bytes, 100));
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("BadDigest");
    // RGW 16 does not check x-amz-checksum-sha256 against the body, but the header is signed:
    // leaving it out (or changing it) breaks the signature.
    const { "x-amz-checksum-sha256": _dropped, ...withoutSha } = created.body.headers as Record<string, string>;
    expect((await putTo({ url: created.body.url, headers: withoutSha }, bytes)).status).toBe(403);
    expect((await putTo(created.body, bytes, { "x-amz-checksum-sha256": b64(sha256(tampered(bytes))) })).status).toBe(403);
    expect(await t.storage.store.head(objectKey("pending", "acme", created.body.upload.id))).toBeNull();

    expect((await putTo(created.body, bytes)).status).toBe(200);
    expect((await t.call("POST", `/v1/uploads/${created.body.upload.id}/complete`, { key, body: {} })).status).toBe(200);
  });

  it("multipart: each part URL binds that part's md5 and sha256 and no Content-Type; a tampered part gets 400 BadDigest, the right bytes complete", async () => {
    const bytes = randomBytesOf(PART + 1000);
    const chunks = [bytes.subarray(0, PART), bytes.subarray(PART)];
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.bin", contentType: "application/zip", size: bytes.length, sha256: sha256(bytes) } });
    expect(created.body).toMatchObject({ kind: "multipart", partCount: 2 });
    const id = created.body.uploadId as string;

    const signed = await t.call("POST", `/v1/uploads/${id}/parts`, {
      key,
      body: { parts: [{ partNumber: 2, md5: md5(chunks[1]!) }, { partNumber: 1, md5: md5(chunks[0]!), sha256: sha256(chunks[0]!).toUpperCase() }] },
    });
    expect(signed.status).toBe(200);
    const [p1, p2] = signed.body.parts as { partNumber: number; size: number; url: string; headers: Record<string, string> }[];
    expect(p1).toMatchObject({ partNumber: 1, size: PART, headers: { "Content-MD5": md5(chunks[0]!), "x-amz-checksum-sha256": b64(sha256(chunks[0]!)) } });
    expect(Object.keys(p1!.headers).sort()).toEqual(["Content-MD5", "x-amz-checksum-sha256"]);
    expect(p2).toMatchObject({ partNumber: 2, size: 1000, headers: { "Content-MD5": md5(chunks[1]!) } });
    expect(Object.keys(p2!.headers)).toEqual(["Content-MD5"]);
    const q1 = queryOf(p1!.url);
    expect(q1.get("X-Amz-SignedHeaders")!.split(";")).toEqual(["content-length", "content-md5", "host", "x-amz-checksum-sha256"]);
    // No checksum the SDK would add on its own (the CRC of an empty body, aws/aws-sdk-js-v3#6806).
    expect([...q1.keys()].filter((k) => /checksum/i.test(k))).toEqual([]);
    expect(queryOf(p2!.url).get("X-Amz-SignedHeaders")!.split(";")).toEqual(["content-length", "content-md5", "host"]);

    // Tampered bytes of the same length, with the original's md5: storage refuses them.
    for (const [p, chunk] of [[p1!, chunks[0]!], [p2!, chunks[1]!]] as const) {
      const bad = await putTo(p, tampered(chunk, chunk.length - 1));
      expect(bad.status).toBe(400);
      expect(await bad.text()).toContain("BadDigest");
    }
    // The checksum headers are signed: a part PUT without them does not get in either.
    expect((await putTo({ url: p2!.url, headers: {} }, chunks[1]!)).status).toBe(403);
    expect(((await t.call("GET", `/v1/uploads/${id}/parts`, { key })).body.parts as unknown[]).length).toBe(0);

    // The right bytes, with exactly the returned headers and no Content-Type (as Uppy sends them).
    const etags = [];
    for (const [p, chunk] of [[p1!, chunks[0]!], [p2!, chunks[1]!]] as const) {
      const put = await fetch(p.url, { method: "PUT", headers: p.headers, body: chunk });
      expect(put.status).toBe(200);
      etags.push({ partNumber: p.partNumber, etag: put.headers.get("etag")! });
    }
    const done = await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: { parts: etags } });
    expect(done.status).toBe(200);
    expect(done.body.upload).toMatchObject({ status: "uploaded", sha256: sha256(bytes) });
    const stored = await t.storage.store.read(objectKey("pending", "acme", id));
    const chunksRead: Buffer[] = [];
    for await (const c of stored!.body) chunksRead.push(c as Buffer);
    expect(Buffer.concat(chunksRead).equals(Buffer.from(bytes))).toBe(true);
  });

  it("keeps the original {partNumbers} shape (no checksum headers) and refuses malformed part checksums", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.bin", contentType: "application/zip", size: PART + 1 } });
    const id = created.body.uploadId as string;
    const plain = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [1, 2] } });
    expect(plain.status).toBe(200);
    expect(plain.body.parts.map((p: { headers: object }) => p.headers)).toEqual([{}, {}]);
    expect(queryOf(plain.body.parts[0].url).get("X-Amz-SignedHeaders")).toBe("content-length;host");

    const refused = async (body: unknown) => {
      const res = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body });
      return { status: res.status, code: res.body.error?.code };
    };
    expect(await refused({ partNumbers: [1], parts: [{ partNumber: 1 }] })).toEqual({ status: 400, code: "invalid_part_numbers" });
    expect(await refused({ parts: [{ partNumber: 1, md5: "not-base64-md5" }] })).toEqual({ status: 400, code: "invalid_checksum" });
    expect(await refused({ parts: [{ partNumber: 1, sha256: b64("00".repeat(32)) }] })).toEqual({ status: 400, code: "invalid_checksum" });
    expect(await refused({ parts: [{ partNumber: 3 }] })).toEqual({ status: 400, code: "invalid_part_numbers" });
    expect(await refused({ parts: [{ partNumber: 1, crc32: "AAAAAA==" }] })).toEqual({ status: 400, code: "unknown_field" });
    await t.call("DELETE", `/v1/uploads/${id}`, { key });
  });
});

describe("a declared sha256 on fauxqs (storage checks nothing): the pipeline's own hash quarantines tampered bytes", () => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", env: MULTIPART_ENV });
  });
  afterAll(async () => s?.close());

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(s.apiUrl + path, { method, headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const text = (size: number) => Buffer.from("Intake checksum test line.\n".repeat(Math.ceil(size / 27)).slice(0, size));

  it("single PUT: the stored sha256 differs from the declared one -> quarantined, checksum_mismatch", async () => {
    const bytes = text(2000);
    const bad = Buffer.from(bytes);
    bad[10] = "X".charCodeAt(0);
    const created = await call("POST", "/v1/uploads", { filename: "a.txt", contentType: "text/plain", size: bytes.length, sha256: sha256(bytes), md5: md5(bytes) });
    expect(created.status).toBe(201);
    // fauxqs takes the PUT even with the original's checksum headers.
    expect((await putTo(created.body as { url: string; headers: Record<string, string> }, bad)).status).toBe(200);
    const done = await s.waitFor(created.body.upload.id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "quarantined", reason: "checksum_mismatch", sha256: sha256(bad) });
    expect(done.reasonDetail).toContain(sha256(bytes));
  });

  it("multipart: a tampered part under the original's part checksums -> quarantined, checksum_mismatch; the untampered twin ends verified", async () => {
    const bytes = text(PART + 500);
    const run = async (send: Buffer) => {
      const created = await call("POST", "/v1/uploads", { filename: "big.txt", contentType: "text/plain", size: bytes.length, sha256: sha256(bytes) });
      expect(created.body).toMatchObject({ kind: "multipart", partCount: 2 });
      const id = created.body.uploadId as string;
      const original = [bytes.subarray(0, PART), bytes.subarray(PART)];
      const signed = await call("POST", `/v1/uploads/${id}/parts`, { parts: original.map((c, i) => ({ partNumber: i + 1, md5: md5(c), sha256: sha256(c) })) });
      expect(signed.status).toBe(200);
      const parts = [];
      for (const p of signed.body.parts as { partNumber: number; url: string; headers: Record<string, string> }[]) {
        const put = await putTo(p, send.subarray((p.partNumber - 1) * PART, p.partNumber * PART));
        expect(put.status).toBe(200);
        parts.push({ partNumber: p.partNumber, etag: put.headers.get("etag")! });
      }
      expect((await call("POST", `/v1/uploads/${id}/complete`, { parts })).status).toBe(200);
      return s.waitFor(id, ["verified", "quarantined"]);
    };
    const bad = Buffer.from(bytes);
    bad[PART + 3] = "X".charCodeAt(0);
    expect(await run(bad)).toMatchObject({ status: "quarantined", reason: "checksum_mismatch", sha256: sha256(bad) });
    expect(await run(bytes)).toMatchObject({ status: "verified", sha256: sha256(bytes) });
  });
});

/**
 * Storage that verifies part sha256s (AWS S3: capabilities.verifiesPartSha256) needs
 * ChecksumAlgorithm SHA256 on CreateMultipartUpload, a sha256 on every part, and each part's
 * ChecksumSHA256 in CompleteMultipartUpload. No AWS here: the API is told its RGW is AWS
 * (STORAGE_KIND=aws) and the requests it sends are read off a forwarding tap. RGW 16 ignores
 * the algorithm and the part checksums, so this proves our side of the exchange only.
 */
describe("part sha256s where storage verifies them (STORAGE_KIND=aws, requests seen on the way to RGW)", () => {
  let t: ApiUnderTest;
  let tap: HttpTap;
  let key: string;
  const seen: { method?: string; url?: string; headers: Record<string, unknown> }[] = [];
  beforeAllOrFailEach(async () => {
    tap = await startHttpTap(process.env.RGW_ENDPOINT ?? "http://127.0.0.1:7480");
    tap.on("request", (r) => seen.push(r));
    t = await startApiUnderTest({ storage: "rgw", database: "sqlite", env: { ...MULTIPART_ENV, STORAGE_KIND: "aws", S3_ENDPOINT: tap.endpoint } });
    key = await t.newKey("acme");
  });
  afterAll(async () => {
    await t?.close();
    await tap?.close();
  });

  it("creates the multipart upload with ChecksumAlgorithm SHA256, requires a sha256 on every part, and completes with them", async () => {
    const bytes = randomBytesOf(PART + 10);
    const chunks = [bytes.subarray(0, PART), bytes.subarray(PART)];
    seen.length = 0;
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.bin", contentType: "application/zip", size: bytes.length, sha256: sha256(bytes) } });
    expect(created.status).toBe(201);
    const id = created.body.uploadId as string;
    const createRequest = seen.find((r) => r.method === "POST" && r.url?.includes("uploads"));
    expect(createRequest?.headers).toMatchObject({ "x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-type": "COMPOSITE" });

    const missing = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { parts: [{ partNumber: 1, sha256: sha256(chunks[0]!) }, { partNumber: 2, md5: md5(chunks[1]!) }] } });
    expect(missing).toMatchObject({ status: 400, body: { error: { code: "part_checksum_required", details: { missing: [2] } } } });
    expect((await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [1] } })).body.error.code).toBe("part_checksum_required");

    const signed = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { parts: chunks.map((c, i) => ({ partNumber: i + 1, sha256: sha256(c) })) } });
    expect(signed.status).toBe(200);
    const parts = [];
    for (const p of signed.body.parts as { partNumber: number; url: string; headers: Record<string, string> }[]) {
      expect(p.headers).toEqual({ "x-amz-checksum-sha256": b64(sha256(chunks[p.partNumber - 1]!)) });
      const put = await putTo(p, chunks[p.partNumber - 1]!);
      expect(put.status).toBe(200);
      parts.push({ partNumber: p.partNumber, etag: put.headers.get("etag")! });
    }
    const done = await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: { parts } });
    expect(done.status).toBe(200);
    expect(await t.storage.store.head(objectKey("pending", "acme", id))).toMatchObject({ size: bytes.length });
  });

  it("names each part's ChecksumSHA256 in CompleteMultipartUpload (the body the SDK sends)", async () => {
    const s3 = createS3Client({ region: "us-east-1", endpoint: t.storage.endpoint, forcePathStyle: true, credentials: t.storage.credentials });
    const bodies: string[] = [];
    s3.middlewareStack.add((next) => async (args) => {
      const body = (args.request as { body?: unknown }).body;
      if (typeof body === "string") bodies.push(body);
      return next(args);
    }, { step: "finalizeRequest", name: "recordBodies" });
    const store = new S3ObjectStore(s3, t.storage.bucket, AWS_S3_CAPABILITIES);
    const k = "pending/acme/complete-body-check";
    const uploadId = await store.createMultipart(k, "application/zip", { sha256Parts: true });
    const part = Buffer.alloc(100, 1);
    const eTag = await store.uploadPart(k, uploadId, 1, part);
    await store.completeMultipart(k, uploadId, [{ partNumber: 1, eTag, sha256Hex: sha256(part) }]);
    expect(bodies.find((b) => b.includes("CompleteMultipartUpload"))).toContain(`<ChecksumSHA256>${b64(sha256(part))}</ChecksumSHA256>`);
    await store.delete(k);
    s3.destroy();
  });

  it("refuses a part sha256 on an upload that declared none (such storage would refuse the PUT)", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.bin", contentType: "application/zip", size: PART + 10 } });
    const id = created.body.uploadId as string;
    const res = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { parts: [{ partNumber: 1, sha256: "0".repeat(64) }] } });
    expect(res).toMatchObject({ status: 400, body: { error: { code: "part_checksum_unsupported" } } });
    expect((await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { parts: [{ partNumber: 1, md5: md5(new Uint8Array(PART)) }] } })).status).toBe(200);
  });
});
