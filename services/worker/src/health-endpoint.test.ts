import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMetrics } from "@intake/metrics";
import { createLogger } from "@intake/runtime";
import { freePort } from "@intake/testkit";
import { startMetricsListener, type MetricsListener } from "./metrics-listener.ts";

const silent = createLogger({ level: "silent", name: "test", destination: { write: () => undefined } });

/**
 * A worker's liveness for container healthchecks and Kubernetes probes (which cannot send
 * the metrics token): GET /healthz on the metrics listener, open, and telling nothing else.
 */
describe("a worker's /healthz", () => {
  const token = randomBytes(24).toString("hex");
  let listener: MetricsListener;
  let base: string;
  beforeAll(async () => {
    listener = (await startMetricsListener({ host: "127.0.0.1", port: await freePort(), token, metrics: createMetrics({ process: "worker", env: "test" }), logger: silent }))!;
    base = listener.url.replace(/\/metrics$/, "");
  });
  afterAll(async () => listener?.close());

  it("answers 200 without the metrics token, and carries no metrics", async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    expect((await fetch(`${base}/healthz?probe=1`, { method: "HEAD" })).status).toBe(200);
  });

  it("opens nothing else: /metrics still wants the token, look-alike paths and other methods are refused", async () => {
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    for (const path of ["/healthz/../metrics", "/healthz/", "/healthzz", "/HEALTHZ", "/%68ealthz"]) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).not.toBe(200);
      expect(await res.text(), path).not.toMatch(/# (HELP|TYPE)/);
    }
    expect((await fetch(`${base}/healthz`, { method: "POST" })).status).not.toBe(200);
  });
});
