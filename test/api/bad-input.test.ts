import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@intake/test";
import { putTo, randomBytesOf, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * Every bad request gets a clear 4xx with a stable code, and nothing is written: no row in
 * the uploads table, no object in the bucket. fauxqs takes any PUT (no signature or length
 * checks), which is what makes a size mismatch at complete reachable here.
 */
const MAX = 1024 * 1024;

describe.each(["sqlite", "pg"] as const)("bad input on fauxqs with %s", (databaseKind) => {
  let t: ApiUnderTest;
  let key: string;
  let otherKey: string;
  const valid = { filename: "photo.png", contentType: "image/png", size: 100 };
  beforeAll(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database: databaseKind, env: { MAX_UPLOAD_BYTES: String(MAX), BODY_LIMIT_BYTES: "2048" } });
    key = await t.newKey("acme");
    otherKey = await t.newKey("globex");
  });
  afterAll(async () => t?.close());

  async function expectNothingWritten() {
    expect(await t.countUploads()).toBe(0);
    expect(await t.bucketKeys()).toEqual([]);
  }

  it("refuses a missing, malformed, unknown or revoked API key with 401", async () => {
    const revoked = await t.keys.create("acme", "old");
    await t.keys.revoke(revoked.info.id);
    const attempts: Record<string, string>[] = [
      {},
      { authorization: `Basic ${Buffer.from("acme:x").toString("base64")}` },
      { authorization: "Bearer" },
      { authorization: "Bearer not-a-key" },
      { authorization: `Bearer ${key.slice(0, -2)}xx` },
      { authorization: `Bearer ${revoked.key}` },
    ];
    for (const headers of attempts) {
      const res = await t.call("POST", "/v1/uploads", { body: valid, headers });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("unauthenticated");
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    expect((await t.call("GET", "/v1/uploads")).status).toBe(401);
    await expectNothingWritten();
  });

  it("refuses sizes that are zero, negative, fractional, not numbers or over the maximum", async () => {
    const cases: [unknown, number, string][] = [
      [0, 400, "invalid_size"],
      [-1, 400, "invalid_size"],
      [1.5, 400, "invalid_size"],
      ["100", 400, "invalid_size"],
      [null, 400, "invalid_size"],
      [1e300, 400, "invalid_size"],
      [MAX + 1, 413, "size_too_large"],
    ];
    for (const [size, status, code] of cases) {
      const res = await t.call("POST", "/v1/uploads", { key, body: { ...valid, size } });
      expect([size, res.status, res.body.error.code]).toEqual([size, status, code]);
    }
    await expectNothingWritten();
  });

  it("refuses a content type outside the allowlist or not a media type", async () => {
    for (const [contentType, code] of [
      ["text/html", "content_type_not_allowed"],
      ["application/x-msdownload", "content_type_not_allowed"],
      ["text/html; charset=utf-8", "content_type_not_allowed"],
      ["not a type", "invalid_content_type"],
      [42, "invalid_content_type"],
    ] as const) {
      const res = await t.call("POST", "/v1/uploads", { key, body: { ...valid, contentType } });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(code);
    }
    await expectNothingWritten();
  });

  it("refuses hostile filenames", async () => {
    const names = ["a\u0000b.png", "a\u0007b.png", "line\nbreak.png", "../../etc/passwd", "dir/photo.png", "dir\\photo.png", "photo\u202Egnp.exe", "\u2066x.png", "x".repeat(256), "é".repeat(128), "", "   ", "..", 7];
    for (const filename of names) {
      const res = await t.call("POST", "/v1/uploads", { key, body: { ...valid, filename } });
      expect([filename, res.status, res.body.error.code]).toEqual([filename, 400, "invalid_filename"]);
    }
    await expectNothingWritten();
  });

  it("refuses malformed JSON, a non-JSON body, an oversized body and unknown fields", async () => {
    const malformed = await t.call("POST", "/v1/uploads", { key, rawBody: '{"filename": "a.png",', headers: { "content-type": "application/json" } });
    expect([malformed.status, malformed.body.error.code]).toEqual([400, "malformed_json"]);

    const form = await t.call("POST", "/v1/uploads", { key, rawBody: "filename=a.png", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect([form.status, form.body.error.code]).toEqual([415, "unsupported_media_type"]);

    const big = await t.call("POST", "/v1/uploads", { key, body: { ...valid, metadata: { note: "x".repeat(4000) } } });
    expect([big.status, big.body.error.code]).toEqual([413, "body_too_large"]);

    const unknown = await t.call("POST", "/v1/uploads", { key, body: { ...valid, bucket: "elsewhere" } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ code: "unknown_field", details: { field: "bucket" } });

    const array = await t.call("POST", "/v1/uploads", { key, body: [valid] });
    expect([array.status, array.body.error.code]).toEqual([400, "invalid_body"]);

    const badChecksum = await t.call("POST", "/v1/uploads", { key, body: { ...valid, sha256: "abc", md5: "nope" } });
    expect([badChecksum.status, badChecksum.body.error.code]).toEqual([400, "invalid_checksum"]);

    const badIdem = await t.call("POST", "/v1/uploads", { key, body: valid, headers: { "idempotency-key": "x".repeat(300) } });
    expect([badIdem.status, badIdem.body.error.code]).toEqual([400, "invalid_idempotency_key"]);
    await expectNothingWritten();
  });

  it("answers unknown routes and methods with JSON errors", async () => {
    const missing = await t.call("GET", "/v1/nothing", { key });
    expect([missing.status, missing.body.error.code]).toEqual([404, "route_not_found"]);
    const method = await t.call("PUT", "/v1/uploads", { key });
    expect([method.status, method.body.error.code]).toEqual([405, "method_not_allowed"]);
    expect(method.headers.get("allow")).toContain("POST");
  });

  it("answers a hostile id in the URL with 404, never quoting its NUL, line break, escape or bidi override raw", async () => {
    // %00 reaches PostgreSQL as a NUL (which it refuses: a 500 if the id were looked up), the
    // others would ride into the message a UI or a terminal shows.
    for (const id of ["a%00b", "%E2%80%AEgnp.exe", "x%1B%5B2J", "a%0D%0Aforged: 1", "%C2%85next", "n".repeat(3000)]) {
      for (const [method, path] of [["GET", `/v1/uploads/${id}`], ["POST", `/v1/uploads/${id}/complete`], ["DELETE", `/v1/upload-sessions/${id}`], ["GET", `/v1/${id}`]] as const) {
        const res = await t.call(method, path, { key });
        expect([id, path, res.status]).toEqual([id, path, 404]);
        expect(res.body.error.message, path).toMatch(/^[\x20-\x7e]{1,200}$/);
      }
    }
    const plain = await t.call("GET", "/v1/uploads/nonexistent", { key });
    expect(plain.body.error.message).toBe("upload nonexistent does not exist");
  });

  it("hides another tenant's upload behind 404 on every route", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: valid });
    const id: string = created.body.upload.id;
    for (const [method, path] of [
      ["GET", `/v1/uploads/${id}`],
      ["POST", `/v1/uploads/${id}/complete`],
      ["DELETE", `/v1/uploads/${id}`],
      ["GET", `/v1/uploads/${id}/download`],
      ["GET", `/v1/uploads/${id}/parts`],
      ["POST", `/v1/uploads/${id}/parts`],
    ] as const) {
      const res = await t.call(method, path, { key: otherKey, ...(method === "POST" && path.endsWith("parts") ? { body: { partNumbers: [1] } } : {}) });
      expect([method, path, res.status, res.body.error.code]).toEqual([method, path, 404, "upload_not_found"]);
    }
    expect((await t.call("GET", "/v1/uploads", { key: otherKey })).body.items).toEqual([]);
    expect((await t.uploads.getById(id))?.status).toBe("pending");
    expect((await t.call("GET", "/v1/uploads/nonexistent", { key })).status).toBe(404);
  });

  it("answers 409 with the state unchanged for complete on a missing object or a size mismatch", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: valid });
    const id: string = created.body.upload.id;
    const missing = await t.call("POST", `/v1/uploads/${id}/complete`, { key });
    expect(missing.status).toBe(409);
    expect(missing.body.error.code).toBe("object_missing");
    expect((await t.uploads.getById(id))?.status).toBe("pending");

    // fauxqs does not check the signed length; real S3 and RGW would refuse this PUT.
    expect((await putTo(created.body, randomBytesOf(99))).status).toBe(200);
    const mismatch = await t.call("POST", `/v1/uploads/${id}/complete`, { key });
    expect(mismatch.status).toBe(409);
    expect(mismatch.body.error).toMatchObject({ code: "size_mismatch", details: { declaredSize: 100, storedSize: 99 } });
    expect((await t.uploads.getById(id))?.status).toBe("pending");
    expect(await t.firstStageJob(id)).toBeUndefined();

    const withParts = await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: { parts: [{ partNumber: 1, etag: "x" }] } });
    expect([withParts.status, withParts.body.error.code]).toEqual([400, "not_multipart"]);
  });

  it("lists uploads newest first with a status filter and a cursor", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      // One creation per millisecond at least: rows created in the same millisecond are
      // ordered by id, which is random, so creation order would not be the expected order.
      const before = Date.now();
      ids.push((await t.call("POST", "/v1/uploads", { key: otherKey, body: { ...valid, filename: `p${i}.png` } })).body.upload.id);
      await waitFor(() => Date.now() > before, { timeoutMs: 1000, message: "the clock to advance past the last creation" });
    }
    await t.call("DELETE", `/v1/uploads/${ids[0]}`, { key: otherKey });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: { id: string; status: string }[]; nextCursor: string | null } } = await t.call("GET", `/v1/uploads?status=pending&limit=2${cursor ? `&cursor=${cursor}` : ""}`, { key: otherKey });
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      expect(page.body.items.every((u) => u.status === "pending")).toBe(true);
      seen.push(...page.body.items.map((u) => u.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    // Newest first, across page boundaries: the reverse of the order they were created in.
    expect(seen).toEqual(ids.slice(1).reverse());
    expect((await t.call("GET", "/v1/uploads?status=aborted", { key: otherKey })).body.items.map((u: { id: string }) => u.id)).toEqual([ids[0]]);
    expect((await t.call("GET", "/v1/uploads?status=nope", { key: otherKey })).body.error.code).toBe("invalid_status");
    expect((await t.call("GET", "/v1/uploads?limit=1000", { key: otherKey })).body.error.code).toBe("invalid_limit");
    expect((await t.call("GET", "/v1/uploads?cursor=garbage", { key: otherKey })).body.error.code).toBe("invalid_cursor");
  });
});
