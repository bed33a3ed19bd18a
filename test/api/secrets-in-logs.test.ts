import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MiB, markVerified, putTo, randomBytesOf, startApiUnderTest, type ApiUnderTest } from "./harness.ts";
import { secretPartOf } from "@intake/db";

/**
 * Presigned URLs and API keys are bearer credentials. A whole flow at debug level (the
 * most talkative) must leave none of them in the log: no signature value, no key, no
 * Bearer token, not even for requests that fail.
 */
describe("secrets in logs", () => {
  let t: ApiUnderTest;
  beforeAll(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", logLevel: "debug", env: { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB) } });
  });
  afterAll(async () => t?.close());

  it("logs requests with route, status and tenant, and no signature, key or bearer token", async () => {
    const key = await t.newKey("acme");
    const secrets = new Set<string>([key, secretPartOf(key)!]);
    const collect = (url: string) => {
      secrets.add(new URL(url).searchParams.get("X-Amz-Signature")!);
      secrets.add(new URL(url).searchParams.get("X-Amz-Credential")!);
    };

    const bytes = randomBytesOf(500);
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 500 }, headers: { "idempotency-key": "log-test" } });
    collect(created.body.url);
    const replay = await t.call("POST", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 500 }, headers: { "idempotency-key": "log-test" } });
    collect(replay.body.url);
    await putTo(created.body, bytes);
    const id: string = created.body.upload.id;
    expect((await t.call("POST", `/v1/uploads/${id}/complete`, { key })).status).toBe(200);
    await markVerified(t, id, "image/png");
    const download = await t.call("GET", `/v1/uploads/${id}/download`, { key });
    expect(download.status).toBe(302);
    collect(download.headers.get("location")!);

    const multipart = await t.call("POST", "/v1/uploads", { key, body: { filename: "b.zip", contentType: "application/zip", size: 6 * MiB } });
    const parts = await t.call("POST", `/v1/uploads/${multipart.body.uploadId}/parts`, { key, body: { partNumbers: [1, 2] } });
    for (const p of parts.body.parts) collect(p.url);
    await t.call("GET", `/v1/uploads/${multipart.body.uploadId}/parts`, { key }); // 501 on fauxqs
    await t.call("POST", "/v1/uploads", { key: `${key}x`, body: {} }); // 401 with a near-key
    await t.call("POST", "/v1/uploads", { key, rawBody: "{oops", headers: { "content-type": "application/json" } });
    await t.call("GET", "/readyz");

    const log = t.logs.join("");
    // The log is not empty: the request lines are there, with what operators need.
    const lines = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.route === "/v1/uploads/:id/download")).toMatchObject({ method: "GET", status: 302, tenant: "acme" });
    expect(lines.filter((l) => l.msg === "request").length).toBeGreaterThanOrEqual(9);

    secrets.delete("");
    expect(secrets.size).toBeGreaterThanOrEqual(7);
    for (const secret of secrets) expect(log).not.toContain(secret);
    expect(log).not.toMatch(/X-Amz-Signature=[0-9a-f]/i);
    expect(log).not.toMatch(/Bearer/i);
    expect(log).not.toMatch(/ik_(live|dev)_[a-z0-9]{16}_/);
  });
});
