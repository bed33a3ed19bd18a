import { createHash } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { beforeAllOrFailEach } from "@intake/test";
import { objectKey } from "@intake/domain";
import { MiB, markVerified, putTo, randomBytesOf, readAll, STACKS, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

// Multipart from 5 MiB up, in 5 MiB parts (S3's minimum part size): 12 MiB -> 5 + 5 + 2.
const ENV = { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB), MAX_UPLOAD_BYTES: String(64 * MiB) };

describe.each(STACKS)("upload flow on %s with %s", (storageKind, databaseKind) => {
  let t: ApiUnderTest;
  let key: string;
  beforeAllOrFailEach(async () => {
    t = await startApiUnderTest({ storage: storageKind, database: databaseKind, env: ENV });
    key = await t.newKey("acme");
  });
  afterAll(async () => t?.close());

  it("creates, accepts the bytes at the URL, completes to uploaded and enqueues inspection", async () => {
    const bytes = randomBytesOf(3000);
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "scan.png", contentType: "image/png", size: bytes.length, metadata: { source: "test" } } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ kind: "single", method: "PUT", headers: { "Content-Type": "image/png" }, upload: { status: "pending", filename: "scan.png", size: 3000, metadata: { source: "test" } } });
    const id: string = created.body.upload.id;
    // The creation time (12 hex digits, so ids sort by it) and 128 random bits.
    expect(id).toMatch(/^[0-9a-f]{44}$/);
    expect(Math.abs(parseInt(id.slice(0, 12), 16) - Date.now())).toBeLessThan(60_000);
    // The row exists before the client has the URL.
    expect((await t.uploads.getById(id))?.status).toBe("pending");

    const put = await putTo(created.body, bytes);
    expect(put.status).toBe(200);

    const done = await t.call("POST", `/v1/uploads/${id}/complete`, { key });
    expect(done.status).toBe(200);
    expect(done.body.upload).toMatchObject({ id, status: "uploaded", result: { storedSize: 3000 } });

    const head = await t.storage.store.head(objectKey("pending", "acme", id));
    expect(head?.size).toBe(3000);
    // 3000 bytes: checked in one pass, whose one job is the scan stage's.
    expect(await t.firstStageJob(id)).toMatchObject({ stage: "scan", data: { v: 1, uploadId: id } });

    // Repeating complete is harmless.
    const again = await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: {} });
    expect(again.status).toBe(200);
    expect(again.body.upload.status).toBe("uploaded");
    expect((await t.call("GET", `/v1/uploads/${id}`, { key })).body.upload.status).toBe("uploaded");
  });

  it("uploads 3 parts in parallel (one retried), lists them, completes, and the bytes equal the source", async () => {
    const source = randomBytesOf(12 * MiB);
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.zip", contentType: "application/zip", size: source.length } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ kind: "multipart", partSize: 5 * MiB, partCount: 3, upload: { multipart: { partSize: 5 * MiB, partCount: 3 } } });
    expect(created.body.url).toBeUndefined();
    const id: string = created.body.uploadId;

    const signed = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [1, 2, 3] } });
    expect(signed.status).toBe(200);
    expect(signed.body.parts.map((p: { partNumber: number; size: number }) => [p.partNumber, p.size])).toEqual([[1, 5 * MiB], [2, 5 * MiB], [3, 2 * MiB]]);
    const slice = (n: number) => source.subarray((n - 1) * 5 * MiB, Math.min(n * 5 * MiB, source.length));

    // In parallel; part 2's first attempt goes wrong (other bytes of the same length, as a
    // client that sent a corrupt buffer) and is retried with a freshly signed URL.
    type Signed = { partNumber: number; url: string; headers: Record<string, string> };
    const results = await Promise.all(
      signed.body.parts.map((p: Signed) => putTo(p, p.partNumber === 2 ? new Uint8Array(5 * MiB) : slice(p.partNumber))),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    const resigned = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [2] } });
    const retried = await putTo(resigned.body.parts[0], slice(2));
    expect(retried.status).toBe(200);
    const etags = [results[0]!.headers.get("etag")!, retried.headers.get("etag")!, results[2]!.headers.get("etag")!];
    expect(etags[1]).not.toBe(results[1]!.headers.get("etag"));

    const listed = await t.call("GET", `/v1/uploads/${id}/parts`, { key });
    if (t.storage.store.capabilities.listsParts) {
      expect(listed.status).toBe(200);
      expect(listed.body.parts.map((p: { partNumber: number; size: number; etag: string }) => [p.partNumber, p.size, p.etag])).toEqual([
        [1, 5 * MiB, etags[0]],
        [2, 5 * MiB, etags[1]],
        [3, 2 * MiB, etags[2]],
      ]);
    } else {
      // fauxqs 2.4.1 has no ListParts: a clear 501, not an empty list that would be a lie.
      expect(listed.status).toBe(501);
      expect(listed.body.error).toMatchObject({ code: "storage_unsupported", details: { operation: "ListParts" } });
    }

    const done = await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: { parts: [3, 1, 2].map((n) => ({ partNumber: n, etag: etags[n - 1] })) } });
    expect(done.status).toBe(200);
    expect(done.body.upload.status).toBe("uploaded");
    const stored = await readAll((await t.storage.store.read(objectKey("pending", "acme", id)))!.body);
    expect(stored.length).toBe(source.length);
    expect(createHash("sha256").update(stored).digest("hex")).toBe(createHash("sha256").update(source).digest("hex"));
    expect(await t.firstStageJob(id)).toBeDefined();
    if (t.storage.store.capabilities.listsMultipartUploads) {
      expect((await t.storage.store.listMultipartUploads("pending/")).map((u) => u.key)).not.toContain(objectKey("pending", "acme", id));
    }
  });

  it("aborts a multipart upload and leaves nothing behind", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.csv", contentType: "text/csv", size: 11 * MiB } });
    const id: string = created.body.uploadId;
    const pendingKey = objectKey("pending", "acme", id);
    const signed = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [1] } });
    expect((await putTo(signed.body.parts[0], randomBytesOf(5 * MiB))).status).toBe(200);
    if (t.storage.store.capabilities.listsMultipartUploads) expect((await t.storage.store.listMultipartUploads("pending/")).map((u) => u.key)).toContain(pendingKey);

    const aborted = await t.call("DELETE", `/v1/uploads/${id}`, { key });
    expect(aborted.status).toBe(200);
    expect(aborted.body.upload.status).toBe("aborted");
    expect(await t.storage.store.head(pendingKey)).toBeNull();
    expect(await t.bucketKeys(pendingKey)).toEqual([]);
    if (t.storage.store.capabilities.listsMultipartUploads) {
      // ListMultipartUploads: no upload in progress under the key (its parts are freed).
      expect((await t.storage.store.listMultipartUploads("pending/")).map((u) => u.key)).not.toContain(pendingKey);
    }
    // Part URLs are no longer issued; a second DELETE is harmless.
    expect((await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [2] } })).status).toBe(409);
    expect((await t.call("DELETE", `/v1/uploads/${id}`, { key })).status).toBe(200);
  });

  it("aborts a single upload and deletes bytes already PUT; an uploaded one cannot be aborted", async () => {
    const bytes = randomBytesOf(100);
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "a.txt", contentType: "text/plain", size: 100 } });
    const id: string = created.body.upload.id;
    expect((await putTo(created.body, bytes)).status).toBe(200);
    const aborted = await t.call("DELETE", `/v1/uploads/${id}`, { key });
    expect(aborted.body.upload.status).toBe("aborted");
    expect(await t.storage.store.head(objectKey("pending", "acme", id))).toBeNull();
    const late = await t.call("POST", `/v1/uploads/${id}/complete`, { key });
    expect(late.status).toBe(409);
    expect(late.body.error).toMatchObject({ code: "upload_not_pending", details: { status: "aborted" } });

    const other = await t.call("POST", "/v1/uploads", { key, body: { filename: "b.txt", contentType: "text/plain", size: 100 } });
    await putTo(other.body, bytes);
    await t.call("POST", `/v1/uploads/${other.body.upload.id}/complete`, { key });
    const refused = await t.call("DELETE", `/v1/uploads/${other.body.upload.id}`, { key });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("upload_not_abortable");
  });

  it("replays an Idempotency-Key: same upload and key, one row; a different body under it is 409", async () => {
    const body = { filename: "same.pdf", contentType: "application/pdf", size: 1234 };
    const headers = { "idempotency-key": `req-${storageKind}-${databaseKind}` };
    const first = await t.call("POST", "/v1/uploads", { key, body, headers });
    const second = await t.call("POST", "/v1/uploads", { key, body: { size: 1234, contentType: "application/pdf", filename: "same.pdf" }, headers });
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(second.body.upload.id).toBe(first.body.upload.id);
    expect(new URL(second.body.url).pathname).toBe(new URL(first.body.url).pathname);
    expect(second.body.upload.urlExpiresAt).toBe(first.body.upload.urlExpiresAt);
    const rows = await t.database.db("uploads").where({ tenant_id: "acme", idempotency_key: headers["idempotency-key"] });
    expect(rows).toHaveLength(1);

    const conflict = await t.call("POST", "/v1/uploads", { key, body: { ...body, size: 1235 }, headers });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe("idempotency_key_reused");
    // The method is part of the request: a form POST under the key of a PUT is not a replay.
    const otherMethod = await t.call("POST", "/v1/uploads", { key, body: { ...body, method: "POST" }, headers });
    expect(otherMethod.status).toBe(409);
    expect(otherMethod.body.error.code).toBe("idempotency_key_reused");
    const explicitPut = await t.call("POST", "/v1/uploads", { key, body: { ...body, method: "PUT" }, headers });
    expect(explicitPut.status).toBe(200);
    // The replayed URL works like the first.
    expect((await putTo(second.body, randomBytesOf(1234))).status).toBe(200);
  });

  it("redirects a verified upload's download to a short presigned GET served as an attachment", async () => {
    const bytes = new Uint8Array(Buffer.from("%PDF-1.7\n" + "x".repeat(200)));
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "Quarterly report \"Q3\"; final.pdf", contentType: "application/pdf", size: bytes.length } });
    const id: string = created.body.upload.id;
    await putTo(created.body, bytes);
    await t.call("POST", `/v1/uploads/${id}/complete`, { key });

    const early = await t.call("GET", `/v1/uploads/${id}/download`, { key });
    expect(early.status).toBe(409);
    expect(early.body.error).toMatchObject({ code: "upload_not_verified", details: { status: "uploaded" } });
    expect(early.body.error.message).toContain("uploaded");

    await markVerified(t, id, "application/pdf");
    const res = await t.call("GET", `/v1/uploads/${id}/download`, { key });
    expect(res.status).toBe(302);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const location = new URL(res.headers.get("location")!);
    expect(location.pathname).toContain(`verified/acme/${id}`);
    expect(location.searchParams.get("response-content-disposition")).toMatch(/^attachment; filename="Quarterly report _Q3__ final.pdf"; filename\*=UTF-8''/);
    expect(location.searchParams.get("response-content-type")).toBe("application/pdf");
    expect(location.searchParams.get("X-Amz-SignedHeaders")).toBe("host");
    expect(Number(location.searchParams.get("X-Amz-Expires"))).toBe(t.config.policy.downloadUrlTtlSeconds);

    const download = await fetch(location);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
    // Both stores serve the disposition and type the URL names (the local proxy applies them).
    expect(download.headers.get("content-disposition")).toMatch(/^attachment;/);
    expect(download.headers.get("content-type")).toBe("application/pdf");
  });
});
