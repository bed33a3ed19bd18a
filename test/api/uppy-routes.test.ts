import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MiB, randomBytesOf, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * The Companion-style routes @uppy/aws-s3 6.x calls (node_modules/@uppy/aws-s3/src/s3-client/
 * CompanionS3.ts), called here exactly as Uppy calls them: no Authorization, no cookies, the
 * session token in the path, JSON bodies for multipart, a form POST for single files. The
 * whole browser run is test/browser/uppy-demo.test.ts.
 */
const ORIGIN = "http://app.example.test";
const PNG = Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010806000000" + "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082", "hex");

// Both stores: RGW checks the POST policy and each part URL's signed length, fauxqs checks neither.
describe.each(["fauxqs", "rgw"] as const)("the Uppy routes on %s", (storageKind) => {
  let t: ApiUnderTest;
  let key: string;
  let base: string;

  async function mintSession(body: Record<string, unknown> = {}): Promise<string> {
    const res = await t.call("POST", "/v1/upload-sessions", { key, body });
    expect(res.status).toBe(201);
    return res.body.token as string;
  }

  /** A call as Uppy makes it: fetch with the page's Origin, nothing else. */
  function uppy(path: string, init: RequestInit = {}, token = base): Promise<Response> {
    return fetch(`${token}/s3${path}`, { ...init, headers: { origin: ORIGIN, ...(init.headers as Record<string, string>) } });
  }

  beforeAll(async () => {
    t = await startApiUnderTest({
      storage: storageKind,
      database: "sqlite",
      env: { CORS_ORIGINS: ORIGIN, MULTIPART_THRESHOLD_BYTES: String(8 * MiB), NODE_ENV: "test", AUTH_FAILURES_PER_ADDRESS: "4" },
    });
    key = await t.newKey("acme");
    base = `${t.url}/v1/uppy/${await mintSession()}`;
  });

  afterAll(async () => {
    await t?.close();
  });

  describe("Uppy's single-file form upload (GET s3/params)", () => {
    it("answers {method: POST, url, fields} with a server-chosen key, and the form POST lands as an ordinary upload", async () => {
      const q = new URLSearchParams({ filename: "pixel.png", type: "image/png", "metadata[name]": "pixel.png", "metadata[type]": "image/png", "metadata[size]": String(PNG.length) });
      const res = await uppy(`/params?${q}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(res.headers.get("cache-control")).toBe("no-store");
      const body = (await res.json()) as { method: string; url: string; fields: Record<string, string> };
      expect(body.method).toBe("POST");
      expect(body.fields.key).toMatch(/^pending\/acme\/[0-9a-f]{44}$/);

      // Uppy's buildPostPolicyForm: the fields first, the file last.
      const form = new FormData();
      for (const [k, v] of Object.entries(body.fields)) form.append(k, v);
      form.append("file", new Blob([PNG], { type: "image/png" }), "pixel.png");
      const post = await fetch(body.url, { method: "POST", body: form });
      expect(post.status).toBeLessThan(300);

      const id = body.fields.key.split("/").pop()!;
      const row = await t.uploads.get("acme", id);
      expect(row).toMatchObject({ filename: "pixel.png", declaredType: "image/png", declaredSize: PNG.length, objectKey: body.fields.key });
      // Uppy's own meta (name, type, size) is not stored as the upload's metadata.
      expect(row!.metadata).toEqual({});
    });

    it("takes a request without the file's size (as Uppy sends it): the size is learned on arrival (test/api/uppy-size-unknown.test.ts)", async () => {
      const res = await uppy(`/params?${new URLSearchParams({ filename: "a.png", type: "image/png", "metadata[name]": "a.png", "metadata[type]": "image/png" })}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      const { fields } = (await res.json()) as { fields: Record<string, string> };
      expect(await t.uploads.get("acme", fields.key!.split("/").pop()!)).toMatchObject({ declaredSize: null, sizeLimit: t.config.policy.maxSize });
    });

    it("refuses a malformed metadata[size] with a reason phrase Uppy can show, CORS headers included", async () => {
      const res = await uppy(`/params?${new URLSearchParams({ filename: "a.png", type: "image/png", "metadata[size]": "12kB" })}`);
      expect(res.status).toBe(400);
      expect(res.statusText).toMatch(/^invalid_size: /);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_size");
    });

    it("refuses a type the policy does not allow, and a file too big for a form upload", async () => {
      const exe = await uppy(`/params?${new URLSearchParams({ filename: "a.exe", type: "application/x-msdownload", "metadata[size]": "10" })}`);
      // Outside the session's allowlist (by default the deployment's): refused before anything is written.
      expect(exe.status).toBe(403);
      expect(exe.statusText).toMatch(/^session_type_not_allowed/);
      const big = await uppy(`/params?${new URLSearchParams({ filename: "big.png", type: "image/png", "metadata[size]": String(9 * MiB) })}`);
      expect(big.status).toBe(400);
      expect(big.statusText).toMatch(/^post_single_only/);
    });

    it("refuses a token that proves nothing (401) and an expired-looking path alike, with CORS headers", async () => {
      const res = await uppy(`/params?filename=a.png&type=image%2Fpng&metadata%5Bsize%5D=3`, {}, `${t.url}/v1/uppy/is_aaaaaaaaaaaaaaaa_${"b".repeat(43)}`);
      expect(res.status).toBe(401);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      // Not the API key's routes: a session token in the path cannot list uploads.
      const list = await fetch(`${base}/../../uploads`);
      expect(list.status).toBe(401);
    });

    it("refuses the API key in the path (it must never sit in a URL), and logs the failed token by session id only", async () => {
      const res = await uppy(`/params?filename=a.png&type=image%2Fpng&metadata%5Bsize%5D=3`, {}, `${t.url}/v1/uppy/${key}`);
      expect(res.status).toBe(403);
      expect(res.statusText).toMatch(/^session_required/);
      const failed = t.logs.filter((l) => l.includes("authentication_failed"));
      expect(failed.some((l) => l.includes("session:aaaaaaaaaaaaaaaa"))).toBe(true);
      expect(failed.join("\n")).not.toContain("b".repeat(43));
    });

    it("answers the preflight of Uppy's JSON POST for a configured origin only", async () => {
      const ok = await fetch(`${base}/s3/multipart`, { method: "OPTIONS", headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
      expect(ok.status).toBe(204);
      expect(ok.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(ok.headers.get("access-control-allow-methods")).toMatch(/DELETE/);
      const other = await fetch(`${base}/s3/multipart`, { method: "OPTIONS", headers: { origin: "http://evil.test", "access-control-request-method": "POST" } });
      expect(other.status).toBe(403);
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
    });
  });

  describe("the demo page outside development", () => {
    it("is not served, and nobody gets a session without a key (NODE_ENV=test: DEMO_PAGE defaults off)", async () => {
      expect(t.config.demoPage).toBe(false);
      expect((await fetch(`${t.url}/demo`)).status).toBe(404);
      expect((await fetch(`${t.url}/demo/assets/demo.js`)).status).toBe(404);
      expect((await fetch(`${t.url}/demo/session`, { method: "POST" })).status).toBe(404);
    });
  });

  describe("Uppy's multipart upload (s3/multipart)", () => {
    const json = (body: unknown): RequestInit => ({ method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

    async function createMultipart(size: number, token = base): Promise<{ key: string; uploadId: string }> {
      const res = await uppy("/multipart", json({ filename: "big.bin.png", type: "image/png", metadata: { name: "big.bin.png", type: "image/png", size } }), token);
      expect(res.status).toBe(200);
      return (await res.json()) as { key: string; uploadId: string };
    }

    it("creates, signs parts Uppy PUTs without a Content-Type, completes: an ordinary upload that arrives", async () => {
      const bytes = randomBytesOf(12 * MiB);
      const { key: objectKey, uploadId } = await createMultipart(bytes.length);
      expect(objectKey).toBe(`pending/acme/${uploadId}`);
      const parts: { PartNumber: number; ETag: string }[] = [];
      for (let n = 1; n <= 3; n++) {
        const signed = await uppy(`/multipart/${uploadId}/${n}?${new URLSearchParams({ key: objectKey })}`);
        expect(signed.status).toBe(200);
        const { url } = (await signed.json()) as { url: string };
        const chunk = bytes.subarray((n - 1) * 5 * MiB, Math.min(n * 5 * MiB, bytes.length));
        const put = await fetch(url, { method: "PUT", body: chunk });
        expect(put.status).toBe(200);
        parts.push({ PartNumber: n, ETag: put.headers.get("etag")!.replace(/"/g, "") });
      }
      const done = await uppy(`/multipart/${uploadId}/complete?${new URLSearchParams({ key: objectKey })}`, json({ parts }));
      expect(done.status).toBe(200);
      const body = (await done.json()) as { location: string; key: string };
      expect(body).toMatchObject({ key: objectKey, location: `/v1/uploads/${uploadId}` });
      const row = await t.uploads.get("acme", uploadId);
      expect(row!.status).toBe("uploaded");
      expect(row!.declaredSize).toBe(bytes.length);
      const stored = await t.storage.s3.send(new (await import("@aws-sdk/client-s3")).GetObjectCommand({ Bucket: t.storage.bucket, Key: objectKey }));
      const got = Buffer.from(await stored.Body!.transformToByteArray());
      expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(bytes).digest("hex"));
    });

    it("refuses a key that is not the upload's, and another session's upload id", async () => {
      const { key: objectKey, uploadId } = await createMultipart(9 * MiB);
      const wrong = await uppy(`/multipart/${uploadId}/1?${new URLSearchParams({ key: "pending/acme/other" })}`);
      expect(wrong.status).toBe(400);
      expect(wrong.statusText).toMatch(/^key_mismatch/);
      const missing = await uppy(`/multipart/${uploadId}/1`);
      expect(missing.status).toBe(400);
      const otherSession = `${t.url}/v1/uppy/${await mintSession()}`;
      const foreign = await uppy(`/multipart/${uploadId}/1?${new URLSearchParams({ key: objectKey })}`, {}, otherSession);
      expect(foreign.status).toBe(404);
      const badPart = await uppy(`/multipart/${uploadId}/0x1?${new URLSearchParams({ key: objectKey })}`);
      expect(badPart.status).toBe(400);
    });

    it("aborts on DELETE (Uppy's cancel) with {} and leaves the upload aborted", async () => {
      const { key: objectKey, uploadId } = await createMultipart(9 * MiB);
      const res = await uppy(`/multipart/${uploadId}?${new URLSearchParams({ key: objectKey })}`, { method: "DELETE" });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({});
      expect((await t.uploads.get("acme", uploadId))!.status).toBe("aborted");
    });

    it("lists stored parts for Uppy's resume where storage can, and says why not (501) where it cannot", async () => {
      const { key: objectKey, uploadId } = await createMultipart(9 * MiB);
      const signed = (await (await uppy(`/multipart/${uploadId}/1?${new URLSearchParams({ key: objectKey })}`)).json()) as { url: string };
      expect((await fetch(signed.url, { method: "PUT", body: randomBytesOf(5 * MiB) })).status).toBe(200);
      const res = await uppy(`/multipart/${uploadId}?${new URLSearchParams({ key: objectKey })}`);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      if (t.storage.name === "fauxqs") {
        expect(res.status).toBe(501);
        expect(res.statusText.length).toBeGreaterThan(5);
      } else {
        expect(res.status).toBe(200);
        const parts = (await res.json()) as { PartNumber: number; ETag: string; Size: number }[];
        expect(parts).toEqual([{ PartNumber: 1, ETag: expect.any(String), Size: 5 * MiB }]);
      }
    });

    it("plans Uppy's 5 MiB parts whatever PART_SIZE_BYTES says, and storage that checks refuses a part of another length", async () => {
      expect(t.config.policy.partSize).toBe(16 * MiB);
      const { key: objectKey, uploadId } = await createMultipart(12 * MiB);
      expect((await t.uploads.get("acme", uploadId))!.multipart).toMatchObject({ partSize: 5 * MiB, partCount: 3 });
      if (t.storage.name !== "rgw") return;
      const { url } = (await (await uppy(`/multipart/${uploadId}/1?${new URLSearchParams({ key: objectKey })}`)).json()) as { url: string };
      expect((await fetch(url, { method: "PUT", body: randomBytesOf(5 * MiB - 1) })).status).toBe(403);
    });

    it("refuses a file small enough for a form upload, and counts it against nobody", async () => {
      const res = await uppy("/multipart", json({ filename: "s.png", type: "image/png", metadata: { size: 100 } }));
      expect(res.status).toBe(400);
      expect(res.statusText).toMatch(/^multipart_too_small/);
    });

    it("applies the session's limits: a session for one file refuses the second", async () => {
      const one = `${t.url}/v1/uppy/${await mintSession({ maxFiles: 1 })}`;
      await createMultipart(9 * MiB, one);
      const res = await uppy("/multipart", json({ filename: "b.png", type: "image/png", metadata: { size: 9 * MiB } }), one);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    });

    // Last: it blocks this address for the rest of the file's API.
    it("counts wrong tokens in the path as failed authentications: guessing stops with 429, Retry-After and CORS", async () => {
      const guess = (i: number) => `${t.url}/v1/uppy/is_${String(i).padStart(16, "0")}_${"c".repeat(43)}`;
      let last: Response | undefined;
      for (let i = 0; i < 6; i++) {
        last = await uppy(`/params?filename=a.png&type=image%2Fpng&metadata%5Bsize%5D=3`, {}, guess(i));
        if (last.status === 429) break;
        expect(last.status).toBe(401);
      }
      expect(last!.status).toBe(429);
      expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(last!.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(last!.statusText).toMatch(/^too_many_failed_authentications/);
    });

    it("never logs the session token that sits in the path", () => {
      const token = base.split("/").pop()!;
      expect(t.logs.join("\n")).not.toContain(token.slice(20));
    });
  });
});
