import type { Context, Next } from "koa";
import { checkMetricsBearer, type IntakeMetrics } from "@intake/metrics";
import { HttpError } from "../../http/errors.ts";
import type { AdminModule } from "../module.ts";
import { createApiMetrics } from "./api-metrics.ts";

/**
 * GET /metrics in Prometheus text format, never public. Two ways in:
 * - `Authorization: Bearer <METRICS_TOKEN>` (Prometheus's scrape config sends it), compared
 *   in constant time (@intake/metrics bearer.ts). Any other Authorization header, a tenant
 *   API key included, is a 401 here and goes no further: a wrong token is never retried
 *   as a session;
 * - no Authorization header at all: an admin session with pipeline.watch (operator,
 *   admin), through the guard like every admin route; compliance gets a 403.
 */
export const mountMetrics: AdminModule = (router, ctx) => {
  const metrics = ctx.metrics ?? createApiMetrics(ctx);
  const token = ctx.config.metrics.token;

  const byToken = async (koa: Context, next: Next) => {
    const bearer = checkMetricsBearer(koa.get("Authorization") || undefined, token);
    if (bearer === "absent") return next();
    if (bearer === "invalid") {
      throw new HttpError(401, "invalid_metrics_token", token ? "the metrics token is wrong: send Authorization: Bearer <METRICS_TOKEN>, or sign in as an operator" : "no METRICS_TOKEN is configured: sign in as an operator to read /metrics");
    }
    return serve(metrics, koa);
  };
  router.get("/metrics", byToken, ctx.guard.require("pipeline.watch"), (koa) => serve(metrics, koa));
};

async function serve(metrics: IntakeMetrics, ctx: Context): Promise<void> {
  const text = await metrics.scrape();
  ctx.body = text;
  // Set after the body (a string body makes Koa pick text/plain): Prometheus reads the
  // exposition format's version from this header.
  ctx.set("Content-Type", metrics.contentType);
  ctx.set("Cache-Control", "no-store");
}
