import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { decodePostPolicy } from "@intake/storage";
import { png } from "../pipeline/fixtures.ts";
import { startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

/**
 * Presigned POST on Ceph RGW, which verifies POST policies (fauxqs checks none): what the
 * policy pins, read from the policy itself; a POST inside it is stored and reaches a verdict
 * through the real workers (RGW sends no events: the client's complete starts them); POSTs
 * outside it are refused by storage, not by us.
 */
describe("presigned POST on RGW", () => {
  let s: PipelineStack;
  const image = png(6, 6, 7);

  beforeAll(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "sqlite", env: { UPLOAD_URL_TTL_SECONDS: "300" } });
  }, 90_000);
  afterAll(async () => s?.close());

  async function call(method: string, path: string, body?: unknown) {
    const res = await fetch(s.apiUrl + path, { method, headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as any };
  }

  async function createPost(size: number, contentType = "image/png") {
    const res = await call("POST", "/v1/uploads", { filename: "photo.png", contentType, size, method: "POST" });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { upload: { id: string }; method: string; url: string; fields: Record<string, string>; expiresAt: string };
  }

  /** A browser's form upload: every field first, the file last. */
  function post(url: string, fields: Record<string, string>, bytes: Uint8Array, fileType = "image/png") {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append("file", new Blob([bytes], { type: fileType }), "photo.png");
    return fetch(url, { method: "POST", body: form });
  }

  it("pins the server's key, the declared type and the exact size, expiring with the URL lifetime", async () => {
    const before = Date.now();
    const created = await createPost(image.length);
    const key = objectKey("pending", s.tenant, created.upload.id);
    expect(created.method).toBe("POST");
    expect(created.fields.key).toBe(key);
    expect(created.fields["Content-Type"]).toBe("image/png");
    const policy = decodePostPolicy(created.fields);
    expect(policy.conditions).toContainEqual(["eq", "$key", key]);
    expect(policy.conditions).toContainEqual(["eq", "$Content-Type", "image/png"]);
    expect(policy.conditions).toContainEqual(["content-length-range", image.length, image.length]);
    // No starts-with anywhere: a prefix would admit other keys or types (image/svg+xml).
    expect(policy.conditions.some((c) => Array.isArray(c) && c[0] === "starts-with")).toBe(false);
    const expires = Date.parse(policy.expiration);
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 299_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 301_000);
    expect(Math.abs(Date.parse(created.expiresAt) - expires)).toBeLessThan(2000);
  });

  it("stores a POST inside the policy, and the upload reaches its verdict through the pipeline", async () => {
    const created = await createPost(image.length);
    const res = await post(created.url, created.fields, image);
    expect(res.status, await res.text()).toBeLessThan(300);
    const done = await call("POST", `/v1/uploads/${created.upload.id}/complete`, {});
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const final = await s.waitFor(created.upload.id, ["verified", "quarantined"]);
    expect(final.status).toBe("verified");
    const got = await s.download(created.upload.id);
    expect(got.status).toBe(200);
    expect(Buffer.compare(got.bytes, image)).toBe(0);
  }, 60_000);

  it("is refused by storage for another key, another Content-Type, a bigger or a smaller file", async () => {
    const created = await createPost(image.length);
    const otherKey = await post(created.url, { ...created.fields, key: objectKey("pending", s.tenant, "0000000000000000000000000000000000000000000000") }, image);
    expect(otherKey.status).toBe(403);
    const otherType = await post(created.url, { ...created.fields, "Content-Type": "image/svg+xml" }, image, "image/svg+xml");
    expect(otherType.status).toBe(403);
    const bigger = await post(created.url, created.fields, new Uint8Array([...image, 0]));
    expect(bigger.status).toBe(400);
    expect(await bigger.text()).toMatch(/EntityTooLarge/);
    const smaller = await post(created.url, created.fields, image.subarray(1));
    expect(smaller.status).toBe(400);
    expect(await smaller.text()).toMatch(/EntityTooSmall/);
    // Nothing reached the upload's key.
    expect(await s.storage.store.head(objectKey("pending", s.tenant, created.upload.id))).toBeNull();
  });

  it("is refused by storage once the policy has expired", async () => {
    const key = objectKey("pending", s.tenant, "expired-post");
    const signed = await s.storage.store.presignPost(key, { contentType: "image/png", contentLength: image.length, expiresIn: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    const res = await post(signed.url, signed.fields, image);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/AccessDenied|expired/i);
    expect(await s.storage.store.head(key)).toBeNull();
  });

  it("is offered for single uploads only, and not with md5 (bound into a PUT only)", async () => {
    const multipart = await call("POST", "/v1/uploads", { filename: "big.zip", contentType: "application/zip", size: 200 * 1024 * 1024, method: "POST" });
    expect(multipart.status).toBe(400);
    expect(multipart.body.error.code).toBe("post_single_only");
    const md5 = await call("POST", "/v1/uploads", { filename: "a.png", contentType: "image/png", size: 10, md5: "1B2M2Y8AsgTpgAmY7PhCfg==", method: "POST" });
    expect(md5.status).toBe(400);
    expect(md5.body.error.code).toBe("md5_needs_put");
    const wrong = await call("POST", "/v1/uploads", { filename: "a.png", contentType: "image/png", size: 10, method: "PATCH" });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toBe("invalid_method");
  });
});
