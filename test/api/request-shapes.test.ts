import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * Request shapes are checked with @intake/contract's schemas (strict: an unknown field is
 * refused), each fault answered 400 with the code of its field and a message naming it,
 * before anything is written. These are the ways around a shape check: keys that exist on
 * every object's prototype, `__proto__` (which zod drops from a record rather than refuse),
 * an unknown field nested in a list, a repeated or extra query parameter, numbers written
 * as strings, hex or exponents.
 */
describe("request shapes against the contract", () => {
  let t: ApiUnderTest;
  let key: string;
  const valid = { filename: "photo.png", contentType: "image/png", size: 100 };
  beforeAll(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * 1024), PART_SIZE_BYTES: String(5 * 1024 * 1024) } });
    key = await t.newKey("acme");
  });
  afterAll(async () => t?.close());

  const create = (rawBody: string) => t.call("POST", "/v1/uploads", { key, rawBody, headers: { "content-type": "application/json" } });

  it("refuses prototype keys and __proto__ as unknown fields, naming them", async () => {
    for (const field of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const res = await create(`{"filename":"a.png","contentType":"image/png","size":1,${JSON.stringify(field)}:{"size":2}}`);
      expect([field, res.status, res.body.error.code, res.body.error.details?.field]).toEqual([field, 400, "unknown_field", field]);
      expect(res.body.error.message).toContain(field);
      expect(res.body.error.details.allowed).toContain("filename");
    }
    expect(await t.countUploads()).toBe(0);
  });

  it("refuses a __proto__ metadata key instead of dropping it", async () => {
    const res = await create('{"filename":"a.png","contentType":"image/png","size":1,"metadata":{"__proto__":"x"}}');
    expect([res.status, res.body.error.code]).toEqual([400, "invalid_metadata"]);
    const upper = await t.call("POST", "/v1/uploads", { key, body: { ...valid, metadata: { Label: "x" } } });
    expect([upper.status, upper.body.error.code]).toEqual([400, "invalid_metadata"]);
    expect(upper.body.error.message).toContain("metadata");
    expect(await t.countUploads()).toBe(0);
  });

  it("reports an unknown field before a wrong one, and each wrong field with its own code and name", async () => {
    const both = await t.call("POST", "/v1/uploads", { key, body: { ...valid, size: "x", extra: 1 } });
    expect([both.status, both.body.error.code, both.body.error.details.field]).toEqual([400, "unknown_field", "extra"]);
    const cases: [Record<string, unknown>, string, string][] = [
      [{ filename: 7 }, "invalid_filename", "filename"],
      [{ contentType: ["image/png"] }, "invalid_content_type", "contentType"],
      [{ size: "100" }, "invalid_size", "size"],
      [{ size: 1.5 }, "invalid_size", "size"],
      [{ sha256: 12 }, "invalid_checksum", "sha256"],
      [{ md5: "x" }, "invalid_checksum", "md5"],
      [{ metadata: ["a"] }, "invalid_metadata", "metadata"],
      [{ metadata: { a: 1 } }, "invalid_metadata", "metadata.a"],
      [{ method: "GET" }, "invalid_method", "method"],
      [{ method: "put" }, "invalid_method", "method"],
      [{ expiresIn: "600" }, "invalid_expiry", "expiresIn"],
      [{ expiresIn: 59 }, "invalid_expiry", "expiresIn"],
    ];
    for (const [over, code, field] of cases) {
      const res = await t.call("POST", "/v1/uploads", { key, body: { ...valid, ...over } });
      expect([over, res.status, res.body.error.code, res.body.error.details?.field]).toEqual([over, 400, code, field]);
      expect(res.body.error.message, JSON.stringify(over)).toContain(field.split(".")[0]);
    }
    const missing = await t.call("POST", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png" } });
    expect([missing.status, missing.body.error.code]).toEqual([400, "invalid_size"]);
    expect(await t.countUploads()).toBe(0);
  });

  it("refuses an unknown field inside a part, and malformed parts, with the part's path", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.zip", contentType: "application/zip", size: 11 * 1024 * 1024 } });
    const id: string = created.body.upload.id;
    const parts = (body: unknown) => t.call("POST", `/v1/uploads/${id}/parts`, { key, body });
    const nested = await parts({ parts: [{ partNumber: 1 }, { partNumber: 2, crc32: "AAAAAA==" }] });
    expect([nested.status, nested.body.error.code, nested.body.error.details.field]).toEqual([400, "unknown_field", "crc32"]);
    expect(nested.body.error.message).toContain("parts[]");
    const badMd5 = await parts({ parts: [{ partNumber: 1, md5: "short" }] });
    expect([badMd5.body.error.code, badMd5.body.error.details.field]).toEqual(["invalid_checksum", "parts[0].md5"]);
    expect(badMd5.body.error.message).toContain("parts[0].md5");
    expect((await parts({ partNumbers: ["1"] })).body.error.code).toBe("invalid_part_numbers");
    expect((await parts({ partNumbers: [] })).body.error.code).toBe("invalid_part_numbers");
    expect((await parts({ parts: "1" })).body.error.code).toBe("invalid_part_numbers");
    expect((await parts({ partNumbers: [1], parts: [{ partNumber: 1 }] })).body.error.code).toBe("invalid_part_numbers");
    const complete = await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: { parts: [{ partNumber: 1, etag: "x", size: 5 }] } });
    expect([complete.status, complete.body.error.code, complete.body.error.details.field]).toEqual([400, "unknown_field", "size"]);
    const etag = await t.call("POST", `/v1/uploads/${id}/complete`, { key, body: { parts: [{ partNumber: 1, etag: "a b" }] } });
    expect([etag.status, etag.body.error.code]).toEqual([400, "invalid_parts"]);
    expect((await t.call("GET", `/v1/uploads/${id}`, { key })).body.upload.status).toBe("pending");
  });

  it("checks query strings: digits only, one value each, no unknown parameter", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: valid });
    const id: string = created.body.upload.id;
    for (const [query, code] of [
      ["wait=1e1", "invalid_wait"],
      ["wait=0x5", "invalid_wait"],
      ["wait=-1", "invalid_wait"],
      ["wait=21", "invalid_wait"],
      ["wait=1&wait=2", "invalid_wait"],
      ["waitt=1", "unknown_field"],
      ["__proto__=1", "unknown_field"],
    ] as const) {
      const res = await t.call("GET", `/v1/uploads/${id}?${query}`, { key });
      expect([query, res.status, res.body.error.code]).toEqual([query, 400, code]);
    }
    expect((await t.call("GET", `/v1/uploads/${id}?wait=0`, { key })).status).toBe(200);
    expect((await t.call("GET", `/v1/uploads/${id}?wait=`, { key })).status).toBe(200);
    for (const [query, code] of [
      ["limit=0x10", "invalid_limit"],
      ["limit=0", "invalid_limit"],
      ["limit=101", "invalid_limit"],
      ["limit=%201", "invalid_limit"],
      ["status=PENDING", "invalid_status"],
      ["status=pending&status=verified", "invalid_status"],
      ["cursor=garbage", "invalid_cursor"],
      ["tenant=globex", "unknown_field"],
    ] as const) {
      const res = await t.call("GET", `/v1/uploads?${query}`, { key });
      expect([query, res.status, res.body.error.code]).toEqual([query, 400, code]);
    }
    const page = await t.call("GET", "/v1/uploads?limit=100&status=pending", { key });
    expect(page.status).toBe(200);
  });

  it("checks an upload session's shape the same way", async () => {
    const mint = (body: unknown) => t.call("POST", "/v1/upload-sessions", { key, body });
    for (const [body, code] of [
      [{ maxFiles: "2" }, "invalid_max_files"],
      [{ maxFiles: 0 }, "invalid_max_files"],
      [{ expiresIn: 86_401 }, "invalid_expiry"],
      [{ maxBytes: -1 }, "invalid_max_bytes"],
      [{ allowedTypes: [] }, "invalid_allowed_types"],
      [{ allowedTypes: "image/png" }, "invalid_allowed_types"],
      [{ metadata: { k: 1 } }, "invalid_metadata"],
      [{ scope: "all" }, "unknown_field"],
    ] as const) {
      const res = await mint(body);
      expect([body, res.status, res.body.error.code]).toEqual([body, 400, code]);
    }
    expect((await mint({ maxBytes: null })).status).toBe(201);
    expect((await t.call("POST", "/v1/upload-sessions", { key })).status).toBe(201);
    const token: string = (await mint({})).body.token;
    const bySession = await t.call("POST", "/v1/uploads", { key: token, body: { ...valid, tenant: "globex" } });
    expect([bySession.status, bySession.body.error.code]).toEqual([400, "unknown_field"]);
  });
});
