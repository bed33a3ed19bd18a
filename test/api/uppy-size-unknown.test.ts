import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessionIdOf, tenantUsage, UploadSessionRepository } from "@intake/db";
import { decodePostPolicy } from "@intake/storage";
import { MiB, randomBytesOf, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * Uploads whose size is learned on arrival: the Uppy routes called as Uppy 6 calls them,
 * without metadata[size] (Uppy sends none). The upload is created with a size limit (the per-file
 * maximum narrowed to the session's remaining budget), which storage enforces where it can
 * (RGW checks the POST policy's content-length-range), the number of part URLs bounds, and
 * the quotas and the session reserve until the object arrives and its real size settles them.
 * What an attacker holding the session token tries: more than the limit in one POST, parts that
 * sum past it, more parts than the bound, several files past the session's maxBytes.
 */
const ORIGIN = "http://app.example.test";
const PNG = Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010806000000" + "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082", "hex");
const json = (body: unknown): RequestInit => ({ method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

// RGW (checks POST policies, lists parts) on SQLite; the stand-in (neither) on PostgreSQL.
describe.each([["rgw", "sqlite"], ["fauxqs", "pg"]] as const)("size-unknown Uppy uploads on %s with %s", (storageKind, database) => {
  let t: ApiUnderTest;
  let key: string;

  beforeAll(async () => {
    t = await startApiUnderTest({ storage: storageKind, database, env: { CORS_ORIGINS: ORIGIN, MAX_UPLOAD_BYTES: String(64 * MiB), NODE_ENV: "test" } });
    key = await t.newKey("acme");
  });
  afterAll(async () => t?.close());

  async function session(body: Record<string, unknown> = {}): Promise<{ base: string; id: string }> {
    const res = await t.call("POST", "/v1/upload-sessions", { key, body });
    expect(res.status).toBe(201);
    const token = res.body.token as string;
    return { base: `${t.url}/v1/uppy/${token}`, id: sessionIdOf(token)! };
  }

  function uppy(base: string, path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${base}/s3${path}`, { ...init, headers: { origin: ORIGIN, ...(init.headers as Record<string, string>) } });
  }

  async function params(base: string, filename = "pixel.png"): Promise<Response> {
    return uppy(base, `/params?${new URLSearchParams({ filename, type: "image/png", "metadata[name]": filename, "metadata[type]": "image/png" })}`);
  }

  function post(url: string, fields: Record<string, string>, bytes: Uint8Array): Promise<Response> {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append("file", new Blob([bytes], { type: "image/png" }), "pixel.png");
    return fetch(url, { method: "POST", body: form });
  }

  async function bytesUsed(sessionId: string): Promise<number> {
    return (await new UploadSessionRepository(t.database.db).get("acme", sessionId))!.bytesUsed;
  }

  /** Creates a size-unknown multipart upload and PUTs the given parts (Uppy's part URLs: no Content-Type, no length bound). */
  async function multipart(base: string, partSizes: number[]): Promise<{ uploadId: string; objectKey: string; parts: { PartNumber: number; ETag: string }[] }> {
    const created = await uppy(base, "/multipart", json({ filename: "big.png", type: "image/png", metadata: { name: "big.png", type: "image/png" } }));
    expect(created.status, created.statusText).toBe(200);
    const { key: objectKey, uploadId } = (await created.json()) as { key: string; uploadId: string };
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (const [i, size] of partSizes.entries()) {
      const signed = await uppy(base, `/multipart/${uploadId}/${i + 1}?${new URLSearchParams({ key: objectKey })}`);
      expect(signed.status, signed.statusText).toBe(200);
      const { url } = (await signed.json()) as { url: string };
      const put = await fetch(url, { method: "PUT", body: randomBytesOf(size) });
      expect(put.status).toBe(200);
      parts.push({ PartNumber: i + 1, ETag: put.headers.get("etag")!.replace(/"/g, "") });
    }
    return { uploadId, objectKey, parts };
  }

  it("creates a form POST whose policy admits 1 byte up to the limit (the session's budget here), and records the real size on arrival", async () => {
    const s = await session({ maxBytes: 100_000 });
    const res = await params(s.base);
    expect(res.status, res.statusText).toBe(200);
    const { url, fields } = (await res.json()) as { url: string; fields: Record<string, string> };
    expect(decodePostPolicy(fields).conditions).toContainEqual(["content-length-range", 1, 100_000]);
    const id = fields.key!.split("/").pop()!;
    expect(await t.uploads.get("acme", id)).toMatchObject({ declaredSize: null, sizeLimit: 100_000, multipart: null });
    // The limit is reserved: the tenant's open bytes and the session's budget hold it.
    expect(await bytesUsed(s.id)).toBe(100_000);
    expect((await tenantUsage(t.database.db, "acme"))!.pendingBytes).toBe(100_000);

    expect((await post(url, fields, PNG)).status).toBeLessThan(300);
    const done = await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: {} });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    // Settled to the real size in the arrival's unit: the rest of the budget is free again.
    expect(await t.uploads.get("acme", id)).toMatchObject({ status: "uploaded", storedSize: PNG.length, declaredSize: null });
    expect(done.body.upload.size).toBe(PNG.length);
    expect(await bytesUsed(s.id)).toBe(PNG.length);
    expect((await tenantUsage(t.database.db, "acme"))!.pendingBytes).toBe(PNG.length);
    // A second complete (or a storage event after it) settles nothing again.
    expect((await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: {} })).status).toBe(200);
    expect(await bytesUsed(s.id)).toBe(PNG.length);
  });

  it("is refused by storage for a POST one byte over the limit and for an empty one (RGW checks the policy)", async () => {
    if (storageKind !== "rgw") return; // fauxqs checks no policy: the pipeline's size check is all there is (test/pipeline)
    const s = await session({ maxBytes: 4096 });
    const { url, fields } = (await (await params(s.base)).json()) as { url: string; fields: Record<string, string> };
    expect((await post(url, fields, new Uint8Array(4097))).status).toBe(400);
    expect((await post(url, fields, new Uint8Array(0))).status).toBe(400);
    expect((await post(url, fields, new Uint8Array(4096))).status).toBeLessThan(300);
  });

  it("cannot take more than the session's maxBytes across several files: each limit is what the budget has left", async () => {
    const s = await session({ maxBytes: 10_000, maxFiles: 10 });
    let stored = 0;
    for (const size of [4_000, 5_000, 1_000]) {
      const res = await params(s.base);
      expect(res.status, res.statusText).toBe(200);
      const { url, fields } = (await res.json()) as { url: string; fields: Record<string, string> };
      expect(decodePostPolicy(fields).conditions).toContainEqual(["content-length-range", 1, 10_000 - stored]);
      // While this one is open the whole remaining budget is reserved: a concurrent file is refused.
      const concurrent = await params(s.base, "other.png");
      expect(concurrent.status).toBe(403);
      expect(concurrent.statusText).toMatch(/^session_max_bytes/);
      expect((await post(url, fields, randomBytesOf(size))).status).toBeLessThan(300);
      expect((await t.call("POST", `/v1/uploads/${fields.key!.split("/").pop()}/complete`, { key, body: {} })).status).toBe(200);
      stored += size;
      expect(await bytesUsed(s.id)).toBe(stored);
    }
    // 10,000 bytes stored: the budget is used up, for a form POST and for multipart alike.
    expect((await params(s.base)).status).toBe(403);
    const more = await uppy(s.base, "/multipart", json({ filename: "m.png", type: "image/png", metadata: {} }));
    expect(more.status).toBe(403);
    expect(more.statusText).toMatch(/^session_max_bytes/);
    expect(await bytesUsed(s.id)).toBe(10_000);
  });

  it("signs no more part URLs than the limit needs at 5 MiB a part, and none bound to a length", async () => {
    const s = await session({ maxBytes: 6 * MiB });
    const created = await uppy(s.base, "/multipart", json({ filename: "big.png", type: "image/png", metadata: {} }));
    const { key: objectKey, uploadId } = (await created.json()) as { key: string; uploadId: string };
    expect(await t.uploads.get("acme", uploadId)).toMatchObject({ declaredSize: null, sizeLimit: 6 * MiB, multipart: { partSize: 5 * MiB, partCount: 2 } });
    const two = await uppy(s.base, `/multipart/${uploadId}/2?${new URLSearchParams({ key: objectKey })}`);
    expect(two.status).toBe(200);
    expect(new URL(((await two.json()) as { url: string }).url).searchParams.get("X-Amz-SignedHeaders")).toBe("host");
    for (const n of ["3", "10000", "10001"]) {
      const beyond = await uppy(s.base, `/multipart/${uploadId}/${n}?${new URLSearchParams({ key: objectKey })}`);
      expect(beyond.status).toBe(400);
      expect(beyond.statusText).toMatch(/^invalid_part_numbers/);
    }
    // The tenant API's parts route applies the same bound to the same upload.
    const api = await t.call("POST", `/v1/uploads/${uploadId}/parts`, { key, body: { partNumbers: [1, 2, 3] } });
    expect(api.status).toBe(400);
  });

  it("refuses to complete parts that sum past the limit (aborting them) where storage lists parts, and settles the budget", async () => {
    const s = await session({ maxBytes: 6 * MiB });
    const before = (await tenantUsage(t.database.db, "acme"))!.pendingBytes;
    const { uploadId, objectKey, parts } = await multipart(s.base, [5 * MiB, 5 * MiB]);
    const done = await uppy(s.base, `/multipart/${uploadId}/complete?${new URLSearchParams({ key: objectKey })}`, json({ parts }));
    if (storageKind === "rgw") {
      expect(done.status).toBe(413);
      expect(done.statusText).toMatch(/^size_over_limit/);
      expect((await t.uploads.get("acme", uploadId))!.status).toBe("aborted");
      // Its parts are gone from storage, and nothing was assembled.
      expect(await t.bucketKeys(objectKey)).toEqual([]);
      const uploads = await t.storage.s3.send(new (await import("@aws-sdk/client-s3")).ListMultipartUploadsCommand({ Bucket: t.storage.bucket, Prefix: objectKey }));
      expect(uploads.Uploads ?? []).toEqual([]);
    } else {
      // fauxqs lists no parts: the object is assembled and recorded; the pipeline refuses it
      // as too_large (test/pipeline/size-unknown.test.ts), its limit stays reserved till then.
      expect(done.status).toBe(200);
      expect(await t.uploads.get("acme", uploadId)).toMatchObject({ status: "uploaded", storedSize: 10 * MiB });
    }
    // Either way the session counts the whole limit (as it counts an aborted upload), never more.
    expect(await bytesUsed(s.id)).toBe(6 * MiB);
    expect((await tenantUsage(t.database.db, "acme"))!.pendingBytes).toBe(storageKind === "rgw" ? before : before + 6 * MiB);
  });

  it("refuses parts smaller than 5 MiB but the last, and a gap in the part numbers", async () => {
    const s = await session();
    const { uploadId, objectKey, parts } = await multipart(s.base, [1 * MiB, 1 * MiB]);
    const complete = (p: unknown) => uppy(s.base, `/multipart/${uploadId}/complete?${new URLSearchParams({ key: objectKey })}`, json({ parts: p }));
    const gap = await complete([parts[1]]);
    expect(gap.status).toBe(400);
    expect(gap.statusText).toMatch(/^missing_parts/);
    const small = await complete(parts);
    expect(small.status).toBe(400);
    // RGW lists the parts: refused by our check before storage is asked to assemble them; the
    // stand-in lists none, and refuses them itself at complete (EntityTooSmall), as S3 does.
    expect(small.statusText).toMatch(storageKind === "rgw" ? /^part_too_small/ : /EntityTooSmall/);
    expect((await t.uploads.get("acme", uploadId))!.status).toBe("pending");
  });

  it("completes what Uppy cuts itself (parts of 5 MiB and a short last one) within the limit: recorded, settled", async () => {
    const s = await session({ maxBytes: 20 * MiB });
    const { uploadId, objectKey, parts } = await multipart(s.base, [5 * MiB, 5 * MiB, 2 * MiB + 3]);
    const done = await uppy(s.base, `/multipart/${uploadId}/complete?${new URLSearchParams({ key: objectKey })}`, json({ parts }));
    expect(done.status, done.statusText).toBe(200);
    expect(await t.uploads.get("acme", uploadId)).toMatchObject({ status: "uploaded", storedSize: 12 * MiB + 3, declaredSize: null });
    expect(await bytesUsed(s.id)).toBe(12 * MiB + 3);
  });

  it("keeps the exact binding when the page does send metadata[size], and refuses a malformed one rather than ignore it", async () => {
    const s = await session();
    const sized = await uppy(s.base, `/params?${new URLSearchParams({ filename: "a.png", type: "image/png", "metadata[size]": String(PNG.length) })}`);
    const { fields } = (await sized.json()) as { fields: Record<string, string> };
    expect(decodePostPolicy(fields).conditions).toContainEqual(["content-length-range", PNG.length, PNG.length]);
    for (const size of ["-1", "1e3", "abc", ""]) {
      const bad = await uppy(s.base, `/params?${new URLSearchParams({ filename: "a.png", type: "image/png", "metadata[size]": size })}`);
      expect(bad.status).toBe(400);
      expect(bad.statusText).toMatch(/^invalid_size/);
    }
  });
});
