import http from "node:http";
import { once } from "node:events";
import { isIP, type AddressInfo } from "node:net";
import { checkMetricsBearer, type IntakeMetrics } from "@intake/metrics";
import type { Logger } from "@intake/runtime";

/**
 * A worker's /metrics: a bare node:http listener (a worker has no Koa app, and needs none
 * for one route) on WORKER_METRICS_HOST:WORKER_METRICS_PORT.
 *
 * Who may read it:
 * - METRICS_TOKEN set: only `Authorization: Bearer <METRICS_TOKEN>`, on any address
 *   (workers have no admin sessions to fall back on);
 * - no token: nobody needs to present anything, so the listener must be reachable from
 *   this host only. A non-loopback WORKER_METRICS_HOST without a token is a configuration
 *   error and the worker refuses to start (MetricsListenerConfigError) rather than publish
 *   its metrics to the network.
 *
 * Several workers on one host each need their own WORKER_METRICS_PORT (or 0 for none): a
 * port already taken is logged as an error and the worker runs on without a listener
 * (Prometheus then shows the target down), since a metrics port is no reason to stop
 * scanning.
 */
export class MetricsListenerConfigError extends Error {
  readonly code = "metrics_listener_misconfigured" as const;
  constructor(message: string) {
    super(message);
    this.name = "MetricsListenerConfigError";
  }
}

export interface MetricsListenerOptions {
  host: string;
  /** 0: no listener. */
  port: number;
  token?: string;
  metrics: IntakeMetrics;
  logger: Logger;
}

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  return isIP(h) === 4 && h.startsWith("127.");
}

/** Checked before anything starts: a refusal must come before the worker takes jobs. */
export function checkMetricsListenerConfig(o: Pick<MetricsListenerOptions, "host" | "port" | "token">): void {
  if (o.port !== 0 && !o.token && !isLoopback(o.host)) {
    throw new MetricsListenerConfigError(
      `WORKER_METRICS_HOST=${o.host} is not a loopback address and METRICS_TOKEN is not set: the worker's metrics would be open to the network. Set METRICS_TOKEN (Prometheus then sends it as a bearer token), or bind WORKER_METRICS_HOST to 127.0.0.1, or set WORKER_METRICS_PORT=0 for no listener.`,
    );
  }
}

export async function startMetricsListener(o: MetricsListenerOptions): Promise<MetricsListener | null> {
  if (o.port === 0) return null;
  checkMetricsListenerConfig(o);
  const server = http.createServer((req, res) => void answer(o, req, res));
  // A scrape is one small GET: no reason to hold a socket for Node's 5 minutes.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.listen(o.port, o.host);
  try {
    await Promise.race([once(server, "listening"), once(server, "error").then(([err]) => Promise.reject(err))]);
  } catch (err) {
    o.logger.error({ err, host: o.host, port: o.port }, "the worker's metrics listener could not start (is WORKER_METRICS_PORT taken by another worker on this host?); running without it");
    server.close();
    return null;
  }
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(":") ? `[${o.host}]` : o.host;
  o.logger.info({ host: o.host, port, auth: o.token ? "bearer token" : "none (loopback only)" }, "worker metrics listening");
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answer(o: MetricsListenerOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  // Liveness for container healthchecks and probes: says only that the process serves, so it
  // needs no token (a probe cannot send one) and reveals nothing a port scan would not.
  if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) return reply(res, 200, "ok", "the worker is running");
  if (path !== "/metrics") return reply(res, 404, "not_found", "only /metrics and /healthz are served here");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return reply(res, 405, "method_not_allowed", `${req.method} is not allowed here`);
  }
  if (o.token) {
    const bearer = checkMetricsBearer(req.headers.authorization, o.token);
    if (bearer !== "valid") {
      res.setHeader("WWW-Authenticate", 'Bearer realm="intake-metrics"');
      return reply(res, 401, bearer === "absent" ? "metrics_token_required" : "invalid_metrics_token", "send Authorization: Bearer <METRICS_TOKEN>");
    }
  }
  try {
    const text = await o.metrics.scrape();
    res.writeHead(200, { "Content-Type": o.metrics.contentType, "Cache-Control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : text);
  } catch (err) {
    o.logger.error({ err }, "metrics scrape failed");
    reply(res, 500, "internal_error", "the metrics could not be collected; see the worker's log");
  }
}

function reply(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  res.end(JSON.stringify(status < 400 ? { status: code } : { error: { code, message } }));
}
