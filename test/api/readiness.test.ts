import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeClamd, type FakeClamd } from "@intake/test";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/** A port nothing listens on: bound, read, released. */
async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe("health, readiness, OpenAPI and CORS", () => {
  let t: ApiUnderTest;
  beforeAll(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { CORS_ORIGINS: "https://app.example.com" } });
  });
  afterAll(async () => t?.close());

  it("answers /healthz, and /readyz with every dependency up", async () => {
    expect(await t.call("GET", "/healthz")).toMatchObject({ status: 200, body: { status: "ok" } });
    const ready = await t.call("GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: "ready",
      checks: { database: { status: "up" }, redis: { status: "up" }, storage: { status: "up" }, clamd: { status: "up" } },
    });
  });

  it("serves the OpenAPI document", async () => {
    const doc = await t.call("GET", "/openapi.json");
    expect(doc.status).toBe(200);
    expect(doc.headers.get("content-type")).toMatch(/^application\/json/);
    expect(doc.body.openapi).toBe("3.1.0");
    expect(Object.keys(doc.body.paths)).toContain("/v1/uploads/{id}/download");
  });

  it("answers CORS for the configured origin only", async () => {
    const preflight = { origin: "https://app.example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" };
    const ok = await t.call("OPTIONS", "/v1/uploads", { headers: preflight });
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(ok.headers.get("access-control-allow-headers")).toMatch(/Authorization/);

    const evil = await t.call("OPTIONS", "/v1/uploads", { headers: { ...preflight, origin: "https://evil.example.net" } });
    expect(evil.status).toBe(403);
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();

    const simple = await t.call("GET", "/healthz", { headers: { origin: "https://app.example.com" } });
    expect(simple.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const other = await t.call("GET", "/healthz", { headers: { origin: "https://evil.example.net" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("readiness with dependencies down", () => {
  let t: ApiUnderTest;
  beforeAll(async () => {
    t = await startApiUnderTest({
      storage: "fauxqs",
      database: "sqlite",
      env: { CLAMD_PORT: String(await closedPort()), REDIS_URL: `redis://127.0.0.1:${await closedPort()}` },
    });
  });
  afterAll(async () => t?.close());

  it("answers 503 naming what is down, and still serves liveness", async () => {
    const ready = await t.call("GET", "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({
      status: "not_ready",
      checks: { database: { status: "up" }, storage: { status: "up" }, redis: { status: "down" }, clamd: { status: "down" } },
    });
    expect((await t.call("GET", "/healthz")).status).toBe(200);
  });

  it("answers a complete it cannot hand to processing with 503, keeping the upload recorded", async () => {
    const key = await t.newKey("acme");
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "a.txt", contentType: "text/plain", size: 3 } });
    await fetch(created.body.url, { method: "PUT", headers: created.body.headers, body: "abc" });
    const done = await t.call("POST", `/v1/uploads/${created.body.upload.id}/complete`, { key });
    expect(done.status).toBe(503);
    expect(done.body.error.code).toBe("queue_unavailable");
    // The arrival is recorded: a retry (or the reaper) re-enqueues an `uploaded` upload.
    expect((await t.uploads.getById(created.body.upload.id))?.status).toBe("uploaded");
  });
});

/**
 * Which database clamd loaded decides the warning. The two VERSION lines clamd gives are
 * played by a fake clamd, so both cases run on every machine: "ClamAV 1.4.6/27431/<date>"
 * with the official database, plain "ClamAV 1.4.6" with custom databases only (man clamd,
 * VERSION; seen here with infra/clamd's test database).
 */
describe("readiness names a clamd that runs on test signatures only", () => {
  const official = "ClamAV 1.4.6/27431/Tue Dec  1 08:24:01 2026";
  const testOnly = "ClamAV 1.4.6";
  const apis: ApiUnderTest[] = [];
  const fakes: FakeClamd[] = [];
  afterAll(async () => {
    for (const a of apis) await a.close();
    for (const f of fakes) await f.close();
  });
  async function apiWith(versionLine: string): Promise<ApiUnderTest> {
    const fake = await startFakeClamd(versionLine);
    fakes.push(fake);
    const api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { CLAMD_PORT: String(fake.port) } });
    apis.push(api);
    return api;
  }

  it("no flag and no warning when clamd's VERSION names an official database", async () => {
    const api = await apiWith(official);
    const ready = await api.call("GET", "/readyz");
    expect(ready.body).toMatchObject({ status: "ready", scanner: { testSignaturesOnly: false } });
    expect(ready.body.scanner.warning).toBeUndefined();
    expect(api.logs.join("")).not.toContain("TEST SIGNATURES ONLY");
  });

  it("the flag, the warning in /readyz and in the log when VERSION names no database", async () => {
    const api = await apiWith(testOnly);
    const ready = await api.call("GET", "/readyz");
    expect(ready.body.scanner).toEqual({ testSignaturesOnly: true, warning: expect.stringMatching(/TEST SIGNATURES ONLY/) });
    expect(api.logs.join("")).toContain("TEST SIGNATURES ONLY");
  });

  it("the flag from infra/clamd's marker even when VERSION names an official database", async () => {
    const api = await apiWith(official);
    expect((await api.call("GET", "/readyz")).body.scanner).toEqual({ testSignaturesOnly: false });
    // infra/clamd/up.sh writes this marker when it generated the test database.
    mkdirSync(join(api.dataDir, "clamd"), { recursive: true });
    writeFileSync(join(api.dataDir, "clamd", "TEST_SIGNATURES_ONLY"), "");
    expect((await api.call("GET", "/readyz")).body.scanner).toEqual({ testSignaturesOnly: true, warning: expect.stringMatching(/TEST SIGNATURES ONLY/) });
  });
});
