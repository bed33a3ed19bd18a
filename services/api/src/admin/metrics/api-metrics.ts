import { createMetrics, healthFromReport, type IntakeMetrics } from "@intake/metrics";
import type { AdminModuleContext } from "../module.ts";
import { watchedQueues } from "../operators/queues.ts";

/**
 * The API process's registry: uploads created (the upload service's hook), and, read when
 * scraped, what every operator asks first: queue depths (every queue bull-board shows),
 * clamd as the API reaches it, the dead-letter queue and the upload in processing that moved
 * least recently (the health module's facts, so /metrics, /readyz and the health page agree).
 */
export function createApiMetrics(ctx: Pick<AdminModuleContext, "config" | "logger" | "queues" | "redis" | "scanner" | "health">): IntakeMetrics {
  const { config } = ctx;
  return createMetrics({
    process: "api",
    env: config.env,
    sources: {
      queues: watchedQueues(ctx).map((w) => w.queue),
      clamd: ctx.scanner,
      signatureMaxAgeHours: config.signatures.maxAgeHours,
      health: healthFromReport(() => ctx.health.report(), config.reaper.stuckAfterSeconds),
    },
    // Debug only: a dependency that is down shows as its gauge (up = 0, no depth), and
    // would otherwise log once per scrape.
    onCollectError: (collector, err) => ctx.logger.debug({ collector, err: { message: (err as Error).message } }, "a metrics collection failed"),
  });
}
