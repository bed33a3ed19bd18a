import { afterAll, describe, expect, it } from "vitest";
import { beforeAllOrFailEach } from "@intake/test";
import { decodePostPolicy } from "@intake/storage";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

const MiB = 1024 * 1024;

/** An adversary holding an upload session token (or none): what it must not reach. */
describe("upload session tokens under attack", () => {
  let t: ApiUnderTest;
  let key: string;
  let otherKey: string;

  beforeAllOrFailEach(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB), ALLOWED_TYPES: "image/png,image/jpeg,application/pdf" } });
    key = await t.newKey("acme");
    otherKey = await t.newKey("globex");
  });
  afterAll(async () => t?.close());

  async function mint(body: Record<string, unknown> = {}, k = key): Promise<string> {
    const res = await t.call("POST", "/v1/upload-sessions", { key: k, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.token;
  }
  const declare = (token: string, body: Record<string, unknown> = {}) => t.call("POST", "/v1/uploads", { key: token, body: { filename: "a.png", contentType: "image/png", size: 10, ...body } });

  it("a session token reaches no route but its own uploads' create/get/parts/complete/abort", async () => {
    const token = await mint();
    const own = await declare(token);
    expect(own.status).toBe(201);
    const id = own.body.upload.id;
    const refused: [string, string][] = [
      ["GET", "/v1/uploads"],
      ["GET", `/v1/uploads/${id}/download`],
      ["POST", "/v1/upload-sessions"],
      ["DELETE", `/v1/upload-sessions/${token.slice(3, 19)}`],
      ["GET", "/v1/admin/quarantine"],
      ["GET", "/v1/admin/webhooks/endpoints"],
      ["GET", "/v1/admin/api-keys"],
      ["GET", "/v1/admin/tenants"],
      ["GET", "/metrics"],
    ];
    for (const [method, path] of refused) {
      const res = await t.call(method, path, { key: token, body: method === "POST" ? {} : undefined });
      expect([401, 403, 404], `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`).toContain(res.status);
      expect(JSON.stringify(res.body)).not.toContain(id.slice(0, 0) + "pending/");
    }
    // Path tricks on the uploads routes.
    for (const path of [`/v1/uploads/${id}/download/`, `/v1/uploads/${id}/%64ownload`, `/v1/uploads/${id}//download`, `/V1/uploads/${id}/download`, `/v1/uploads/${id}/download?x=1`]) {
      const res = await t.call("GET", path, { key: token });
      expect([403, 404], `${path}: ${res.status} ${JSON.stringify(res.body)}`).toContain(res.status);
    }
  });

  it("another session's, the API key's and another tenant's uploads are not found, on every session route and Uppy route", async () => {
    const a = await mint();
    const b = await mint();
    const g = await mint({}, otherKey);
    const ofB = (await declare(b)).body.upload;
    const ofKey = (await t.call("POST", "/v1/uploads", { key, body: { filename: "k.png", contentType: "image/png", size: 10 } })).body.upload;
    const ofG = (await declare(g)).body.upload;
    for (const u of [ofB, ofKey, ofG]) {
      for (const [m, p, body] of [["GET", `/v1/uploads/${u.id}`], ["GET", `/v1/uploads/${u.id}/parts`], ["POST", `/v1/uploads/${u.id}/parts`, { partNumbers: [1] }], ["POST", `/v1/uploads/${u.id}/complete`, {}], ["DELETE", `/v1/uploads/${u.id}`]] as const) {
        const res = await t.call(m, p, { key: a, body });
        expect(res.status, `${m} ${p} ${JSON.stringify(res.body)}`).toBe(404);
      }
      for (const [m, p] of [["GET", `/s3/multipart/${u.id}?key=${encodeURIComponent(u.objectKey ?? "x")}`], ["GET", `/s3/multipart/${u.id}/1?key=${encodeURIComponent(u.objectKey ?? "x")}`], ["DELETE", `/s3/multipart/${u.id}?key=${encodeURIComponent(u.objectKey ?? "x")}`], ["POST", `/s3/multipart/${u.id}/complete?key=x`]] as const) {
        const res = await fetch(`${t.url}/v1/uppy/${a}${p}`, { method: m, headers: { "content-type": "application/json" }, body: m === "POST" ? JSON.stringify({ parts: [] }) : undefined });
        expect(res.status, `${m} ${p} ${await res.text()}`).toBe(404);
      }
    }
    // The API key in the Uppy path, and the API key's upload through another tenant's session.
    const res = await fetch(`${t.url}/v1/uppy/${key}/s3/multipart/${ofKey.id}?key=x`);
    expect(res.status).toBe(403);
    // An is_ token in the header and an API key in the path: the path wins, the header is ignored.
    const mixed = await fetch(`${t.url}/v1/uppy/${key}/s3/params?filename=a.png&type=image%2Fpng&metadata%5Bsize%5D=3`, { headers: { authorization: `Bearer ${a}` } });
    expect(mixed.status).toBe(403);
  });

  it("limits at the limit plus one: maxFiles, maxBytes, abort and recreate, concurrent creates", async () => {
    const token = await mint({ maxFiles: 2, maxBytes: 25 });
    expect((await declare(token, { size: 10 })).status).toBe(201);
    const second = await declare(token, { size: 16 });
    expect(second.status).toBe(403);
    expect(second.body.error.code).toBe("session_max_bytes");
    const ok = await declare(token, { size: 15 });
    expect(ok.status).toBe(201);
    expect((await t.call("DELETE", `/v1/uploads/${ok.body.upload.id}`, { key: token })).status).toBe(200);
    const again = await declare(token, { size: 1 });
    expect(again.status).toBe(403);
    expect(again.body.error.code).toBe("session_max_files");

    const race = await mint({ maxFiles: 3 });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => declare(race, { filename: `r${i}.png` })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(3);

    // Idempotent replay does not spend the budget twice nor lets a session re-sign another's upload.
    const idem = await mint({ maxFiles: 1 });
    const h = { "idempotency-key": "k1" };
    const r1 = await t.call("POST", "/v1/uploads", { key: idem, headers: h, body: { filename: "a.png", contentType: "image/png", size: 10 } });
    const r2 = await t.call("POST", "/v1/uploads", { key: idem, headers: h, body: { filename: "a.png", contentType: "image/png", size: 10 } });
    expect([r1.status, r2.status]).toEqual([201, 200]);
    const other = await mint({ maxFiles: 1 });
    const r3 = await t.call("POST", "/v1/uploads", { key: other, headers: h, body: { filename: "a.png", contentType: "image/png", size: 10 } });
    expect(r3.status).toBe(201);
    expect(r3.body.upload.id).not.toBe(r1.body.upload.id);
  });

  it("allowedTypes cannot be passed by case, parameters, aliases or a non-string type", async () => {
    const token = await mint({ allowedTypes: ["image/png"] });
    for (const contentType of ["image/JPEG", "image/jpeg; x=image/png", "image/jpg", "IMAGE/JPEG ", ["image/jpeg"], "application/pdf"]) {
      const res = await declare(token, { contentType });
      expect(res.status, `${JSON.stringify(contentType)} ${JSON.stringify(res.body)}`).toBeGreaterThanOrEqual(400);
    }
    // Allowed spellings: what is stored and what the POST policy pins is the canonical type.
    for (const contentType of ["image/PNG", "image/png; charset=x"]) {
      const res = await declare(token, { contentType, method: "POST" });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      {
        expect(res.body.upload.declaredType ?? res.body.upload.contentType).toBe("image/png");
        const policy = decodePostPolicy(res.body.upload?.fields ?? res.body.fields ?? res.body.request?.fields ?? {});
        expect(JSON.stringify(policy.conditions)).toContain('["eq","$Content-Type","image/png"]');
        expect(JSON.stringify(policy.conditions)).toContain('["content-length-range",10,10]');
      }
    }
    // The Uppy route, same checks.
    const q = new URLSearchParams({ filename: "a.jpg", type: "image/jpeg", "metadata[size]": "3" });
    const res = await fetch(`${t.url}/v1/uppy/${token}/s3/params?${q}&type=image%2Fpng`);
    expect(res.status).toBe(403);
  });

  it("the client cannot override the session's metadata (body, Uppy query, case tricks)", async () => {
    const token = await mint({ metadata: { user: "u-1" } });
    const a = await declare(token, { metadata: { user: "forged" } });
    expect(a.body.upload.metadata.user).toBe("u-1");
    const b = await declare(token, { metadata: { User: "forged" } });
    expect(b.status).toBe(400);
    const q = new URLSearchParams({ filename: "a.png", type: "image/png", "metadata[size]": "3", "metadata[user]": "forged" });
    const res = await fetch(`${t.url}/v1/uppy/${token}/s3/params?${q}&metadata%5Buser%5D=forged2`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { fields: Record<string, string> };
    const row = await t.uploads.get("acme", body.fields.key!.split("/").pop()!);
    expect(row!.metadata).toEqual({ user: "u-1" });
  });

  it("the token never reaches a log line or an error body someone else reads (unmatched Uppy paths too)", async () => {
    const token = await mint();
    const secret = token.slice(20);
    const paths = ["/s3/nothing", "/s3/params/../../../uploads", "/s3/multipart/x/y/z", "/", "", "/s3/params%2F..%2F"];
    for (const p of paths) {
      const res = await fetch(`${t.url}/v1/uppy/${token}${p}`);
      const text = await res.text();
      expect(res.status, `${p}: ${text}`).toBeGreaterThanOrEqual(400);
    }
    const bad = await fetch(`${t.url}/v1/uppy/${token.slice(0, -1)}x/s3/params?filename=a.png&type=image%2Fpng&metadata%5Bsize%5D=3`);
    expect(bad.status).toBe(401);
    expect(t.logs.join("\n")).not.toContain(secret);
    expect(t.logs.join("\n")).not.toContain(token.slice(0, -1));
  });

  it("the demo's keyless session endpoint answers only its own page, and names a missing development tenant", async () => {
    // The harness runs with NODE_ENV=development, so the demo is on here.
    const crossSite = await t.call("POST", "/demo/session", { headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
    expect(crossSite.status).toBe(403);
    expect(crossSite.body.error.code).toBe("csrf_failed");
    const noProof = await t.call("POST", "/demo/session", {});
    expect(noProof.status).toBe(403);
    // The page's own fetch: same origin. This database has no "dev" tenant.
    const own = await t.call("POST", "/demo/session", { headers: { "sec-fetch-site": "same-origin", origin: t.url } });
    expect(own.status).toBe(404);
    expect(own.body.error.code).toBe("tenant_not_found");
    expect(t.logs.join("\n")).not.toMatch(/insert into "upload_sessions"/);
    await t.keys.ensureTenant("dev");
    const minted = await t.call("POST", "/demo/session", { headers: { "sec-fetch-site": "same-origin", origin: "https://forged.example" } });
    expect(minted.status).toBe(201);
    // The endpoint is built from the request's own host, never from a client's Origin header.
    expect(minted.body.uppyEndpoint.startsWith(`${t.url}/v1/uppy/is_`)).toBe(true);
  });

  it("the demo's keyless session endpoint does not exist when DEMO_PAGE is off", async () => {
    const off = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { DEMO_PAGE: "false" } });
    try {
      for (const [m, p] of [["POST", "/demo/session"], ["GET", "/demo"]] as const) {
        const res = await off.call(m, p, {});
        expect(res.status, `${m} ${p}`).toBe(404);
      }
    } finally {
      await off.close();
    }
  });
});
