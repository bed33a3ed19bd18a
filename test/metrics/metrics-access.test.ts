import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMetrics } from "@intake/metrics";
import { createLogger } from "@intake/runtime";
import { freePort } from "@intake/testkit";
import { checkMetricsListenerConfig, MetricsListenerConfigError, startMetricsListener, type MetricsListener } from "../../services/worker/src/metrics-listener.ts";
import { signInAs } from "../api/admin-session.ts";
import { startApiUnderTest, type ApiUnderTest } from "../api/harness.ts";

/**
 * /metrics is not public (issue 10 section 5): the API's takes the bearer token or an
 * operator's session; a worker's listener takes the token only. Each way past the check
 * an attacker would try is a case here.
 */
const silent = createLogger({ level: "silent", name: "test", destination: { write: () => undefined } });

describe("the API's /metrics", () => {
  const token = randomBytes(24).toString("hex");
  let api: ApiUnderTest;
  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { METRICS_TOKEN: token } });
  });
  afterAll(async () => api?.close());

  const get = (headers: Record<string, string> = {}) => fetch(`${api.url}/metrics`, { headers, redirect: "manual" });
  const isExposition = async (res: Response) => {
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const text = await res.text();
    expect(text).toMatch(/^# HELP intake_uploads_created_total /m);
    expect(text).toMatch(/^intake_uploads_created_total\{kind="single"\} \d+$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
  };

  it("serves the exposition format to the right bearer token", async () => {
    await isExposition(await get({ authorization: `Bearer ${token}` }));
    await isExposition(await get({ authorization: `bearer ${token}` })); // the scheme is case-insensitive (RFC 9110)
  });

  it("refuses a request with no token and no session (401)", async () => {
    const res = await get();
    expect(res.status).toBe(401);
    expect(await res.text()).not.toContain("intake_");
  });

  it.each([
    ["a wrong token", () => `Bearer ${token.slice(0, -1)}x`],
    ["the token with a byte more", () => `Bearer ${token}0`],
    ["a prefix of the token", () => `Bearer ${token.slice(0, 8)}`],
    ["the token under another scheme", () => `Basic ${token}`],
    ["the token with no scheme", () => token],
    ["an empty bearer", () => "Bearer "],
    ["two tokens", () => `Bearer ${token} ${token}`],
  ])("refuses %s with 401, never falling back to a session", async (_name, header) => {
    // A signed-in operator's cookie rides along: a wrong token must not be rescued by it.
    const operator = await signInAs(api, "operator");
    const res = await get({ authorization: header(), cookie: operator.cookie });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    const body = (await res.json()) as { error: { code: string } };
    expect(body.error.code).toBe("invalid_metrics_token");
  });

  it("refuses a tenant API key (401: it is not the metrics token)", async () => {
    const key = await api.newKey("acme");
    const res = await get({ authorization: `Bearer ${key}` });
    expect(res.status).toBe(401);
  });

  it("serves an operator's and an admin's session", async () => {
    for (const role of ["operator", "admin"] as const) {
      const who = await signInAs(api, role);
      await isExposition(await who.request("GET", "/metrics"));
    }
  });

  it("refuses a compliance reviewer's session (403)", async () => {
    const reviewer = await signInAs(api, "compliance");
    const res = await reviewer.request("GET", "/metrics");
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain("intake_");
  });

  it("refuses a session cookie that is not a session (401)", async () => {
    const res = await get({ cookie: `intake_admin=${randomBytes(32).toString("base64url")}` });
    expect(res.status).toBe(401);
  });
});

describe("the API's /metrics with no METRICS_TOKEN configured", () => {
  let api: ApiUnderTest;
  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite" });
  });
  afterAll(async () => api?.close());

  it("accepts no bearer at all, whatever it says, and still serves an operator's session", async () => {
    for (const header of ["Bearer ", "Bearer undefined", "Bearer null", `Bearer ${"a".repeat(32)}`]) {
      expect((await fetch(`${api.url}/metrics`, { headers: { authorization: header } })).status).toBe(401);
    }
    const operator = await signInAs(api, "operator");
    expect((await operator.request("GET", "/metrics")).status).toBe(200);
  });
});

describe("a worker's metrics listener", () => {
  const token = randomBytes(24).toString("hex");
  const metrics = createMetrics({ process: "worker", env: "test" });
  let listener: MetricsListener;
  beforeAll(async () => {
    listener = (await startMetricsListener({ host: "127.0.0.1", port: await freePort(), token, metrics, logger: silent }))!;
  });
  afterAll(async () => listener?.close());

  it("serves the right bearer token", async () => {
    const res = await fetch(listener.url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(await res.text()).toMatch(/^intake_verdicts_total\{reason="malware"\} 0$/m);
  });

  it.each([
    ["no token", {}],
    ["a wrong token of the same length", { authorization: `Bearer ${"0".repeat(token.length)}` }],
    ["an operator's cookie (workers have no sessions)", { cookie: "intake_admin=whatever" }],
  ])("refuses %s (401)", async (_name, headers: Record<string, string>) => {
    const res = await fetch(listener.url, { headers });
    expect(res.status).toBe(401);
    expect(await res.text()).not.toContain("intake_verdicts");
  });

  it("serves /metrics only, and only GET and HEAD", async () => {
    const base = listener.url.replace(/\/metrics$/, "");
    expect((await fetch(`${base}/`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    expect((await fetch(`${base}/metrics/../metrics`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200); // fetch normalises the path
    expect((await fetch(listener.url, { method: "POST", headers: { authorization: `Bearer ${token}` } })).status).toBe(405);
    const head = await fetch(listener.url, { method: "HEAD", headers: { authorization: `Bearer ${token}` } });
    expect(head.status).toBe(200);
  });

  it("without a token serves loopback only: another address without a token is refused at start", async () => {
    expect(() => checkMetricsListenerConfig({ host: "0.0.0.0", port: 9464 })).toThrow(MetricsListenerConfigError);
    expect(() => checkMetricsListenerConfig({ host: "10.1.2.3", port: 9464 })).toThrow(MetricsListenerConfigError);
    expect(() => checkMetricsListenerConfig({ host: "::", port: 9464 })).toThrow(MetricsListenerConfigError);
    expect(() => checkMetricsListenerConfig({ host: "127.0.0.1.example.com", port: 9464 })).toThrow(MetricsListenerConfigError);
    expect(() => checkMetricsListenerConfig({ host: "0.0.0.0", port: 0 })).not.toThrow(); // no listener at all
    expect(() => checkMetricsListenerConfig({ host: "0.0.0.0", port: 9464, token })).not.toThrow();
    for (const host of ["127.0.0.1", "localhost", "::1", "[::1]"]) expect(() => checkMetricsListenerConfig({ host, port: 9464 })).not.toThrow();

    const open = (await startMetricsListener({ host: "127.0.0.1", port: await freePort(), metrics, logger: silent }))!;
    try {
      expect((await fetch(open.url)).status).toBe(200);
    } finally {
      await open.close();
    }
  });

  it("a port already taken leaves the worker without a listener, not without a worker", async () => {
    const port = Number(new URL(listener.url).port);
    expect(await startMetricsListener({ host: "127.0.0.1", port, token, metrics, logger: silent })).toBeNull();
    expect(await startMetricsListener({ host: "127.0.0.1", port: 0, token, metrics, logger: silent })).toBeNull(); // 0: none
  });
});
