import { createHash } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { beforeAllOrFailEach } from "@intake/test";
import { objectKey } from "@intake/domain";
import { putTo, queryOf, randomBytesOf, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * What the issued URL binds, read from the URL itself on both stores, and on Ceph RGW
 * (which verifies SigV4, unlike fauxqs) proof that storage refuses every misuse.
 */
describe.each(["fauxqs", "rgw"] as const)("issued upload URL on %s", (storageKind) => {
  let t: ApiUnderTest;
  let key: string;
  beforeAllOrFailEach(async () => {
    t = await startApiUnderTest({ storage: storageKind, database: "sqlite", env: { UPLOAD_URL_TTL_SECONDS: "300", MAX_UPLOAD_URL_TTL_SECONDS: "900", MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * 1024), PART_SIZE_BYTES: String(5 * 1024 * 1024) } });
    key = await t.newKey("acme");
  });
  afterAll(async () => t?.close());

  async function create(body: Record<string, unknown>) {
    const res = await t.call("POST", "/v1/uploads", { key, body: { filename: "f.png", contentType: "image/png", ...body } });
    expect(res.status).toBe(201);
    return res.body as { url: string; headers: Record<string, string>; upload: { id: string } };
  }

  it("signs content-length and content-type, no empty-body crc32, and expires as configured", async () => {
    const created = await create({ size: 10 });
    const q = queryOf(created.url);
    expect(q.get("X-Amz-SignedHeaders")!.split(";")).toEqual(["content-length", "content-type", "host"]);
    // SDK >= 3.729 would add x-amz-checksum-crc32 of an empty body (aws-sdk-js-v3#6806).
    expect(created.url).not.toMatch(/x-amz-checksum-crc32|x-amz-sdk-checksum-algorithm/i);
    expect(q.get("X-Amz-Expires")).toBe("300");
    expect(new URL(created.url).pathname).toMatch(new RegExp(`/${objectKey("pending", "acme", created.upload.id)}$`));
    expect(created.headers).toEqual({ "Content-Type": "image/png" });
  });

  it("binds a declared sha256 (as a header, not hoisted into the query) and md5", async () => {
    const bytes = randomBytesOf(64);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const md5 = createHash("md5").update(bytes).digest("base64");
    const created = await create({ size: 64, sha256, md5 });
    const q = queryOf(created.url);
    expect(q.get("X-Amz-SignedHeaders")!.split(";")).toEqual(["content-length", "content-md5", "content-type", "host", "x-amz-checksum-sha256"]);
    expect(q.has("x-amz-checksum-sha256")).toBe(false);
    expect(created.headers).toEqual({ "Content-Type": "image/png", "x-amz-checksum-sha256": Buffer.from(sha256, "hex").toString("base64"), "Content-MD5": md5 });
    expect((await putTo(created, bytes)).status).toBe(200);
  });

  it("signs part URLs for the server-chosen key, its upload id and part number, with the part's length bound", async () => {
    const MiB = 1024 * 1024;
    const res = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.zip", contentType: "application/zip", size: 11 * MiB } });
    expect(res.status).toBe(201);
    const { uploadId: id, partSize } = res.body as { uploadId: string; partSize: number };
    const signed = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [1, 3] } });
    expect(signed.status).toBe(200);
    const row = (await t.call("GET", `/v1/uploads/${id}`, { key })).body.upload;
    for (const part of signed.body.parts as { partNumber: number; size: number; url: string; headers: Record<string, string> }[]) {
      const url = new URL(part.url);
      const q = url.searchParams;
      expect(q.get("X-Amz-SignedHeaders")!.split(";")).toEqual(["content-length", "host"]);
      expect(part.url).not.toMatch(/x-amz-checksum-crc32|x-amz-sdk-checksum-algorithm/i);
      expect(q.get("X-Amz-Expires")).toBe("300");
      expect(q.get("partNumber")).toBe(String(part.partNumber));
      expect(q.get("uploadId")).toBeTruthy();
      expect(url.pathname).toMatch(new RegExp(`/${objectKey("pending", "acme", id)}$`));
      expect(part.size).toBe(part.partNumber === 3 ? 11 * MiB - 2 * partSize : partSize);
      expect(part.headers).toEqual({});
    }
    expect(row.status).toBe("pending");
    // The length is part of the signature: storage that verifies signatures (as declared)
    // refuses a part of another size; the stand-in that does not takes it.
    const three = signed.body.parts[1];
    const wrong = await putTo(three, randomBytesOf(three.size + 1));
    expect(wrong.status).toBe(t.storage.store.capabilities.verifiesSignatures ? 403 : 200);
    const right = await putTo(three, randomBytesOf(three.size));
    expect(right.status).toBe(200);
    expect((await t.call("DELETE", `/v1/uploads/${id}`, { key })).status).toBeLessThan(300);
  });

  it("honours a requested expiry within the cap and refuses one above it or below 60 s", async () => {
    expect(queryOf((await create({ size: 5, expiresIn: 120 })).url).get("X-Amz-Expires")).toBe("120");
    for (const expiresIn of [901, 59, 60.5, "120"]) {
      const res = await t.call("POST", "/v1/uploads", { key, body: { filename: "f.png", contentType: "image/png", size: 5, expiresIn } });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_expiry");
    }
  });

  if (storageKind === "rgw") {
    it("is refused by storage for another type, another length, a changed key or expiry (403), accepted as issued", async () => {
      const bytes = randomBytesOf(100);
      const created = await create({ size: 100 });

      const otherType = await putTo(created, bytes, { "Content-Type": "image/jpeg" });
      expect(otherType.status).toBe(403);
      const otherLength = await putTo(created, randomBytesOf(101));
      expect(otherLength.status).toBe(403);
      const shorter = await putTo(created, bytes.subarray(0, 99));
      expect(shorter.status).toBe(403);

      const changedKey = new URL(created.url);
      changedKey.pathname = changedKey.pathname.replace(/.$/, (c) => (c === "a" ? "b" : "a"));
      expect((await putTo({ url: changedKey.toString(), headers: created.headers }, bytes)).status).toBe(403);

      const changedExpiry = new URL(created.url);
      changedExpiry.searchParams.set("X-Amz-Expires", "900");
      expect((await putTo({ url: changedExpiry.toString(), headers: created.headers }, bytes)).status).toBe(403);

      // Nothing above was stored; the URL as issued still works.
      expect(await t.storage.store.head(objectKey("pending", "acme", created.upload.id))).toBeNull();
      expect((await putTo(created, bytes)).status).toBe(200);
    });

    it("refuses bytes that do not match a declared md5 (400 BadDigest)", async () => {
      const bytes = randomBytesOf(64);
      const md5 = createHash("md5").update(bytes).digest("base64");
      const created = await create({ size: 64, md5 });
      const tampered = Uint8Array.from(bytes, (b, i) => (i === 0 ? b ^ 0xff : b));
      const res = await putTo(created, tampered);
      expect(res.status).toBe(400);
      expect(await res.text()).toContain("BadDigest");
      expect(await t.storage.store.head(objectKey("pending", "acme", created.upload.id))).toBeNull();
    });
  }
});
