import type { PipelineHealthReport } from "@intake/pipeline";
import { shortReason } from "@intake/pipeline";
import type { AdminModule } from "../module.ts";
import { mountQueueBoard, QUEUES_PATH, watchedQueues, type WatchedQueue } from "./queues.ts";

/**
 * The operators' view: bull-board at /admin/queues (queues.ts) and the health page,
 * /admin/health, with the same facts as JSON at /v1/admin/health: the facts /readyz shows
 * (@intake/pipeline health.ts), with the oldest upload's id, and the job counts per queue.
 */
export const mountOperators: AdminModule = (router, ctx) => {
  const queues = watchedQueues(ctx);
  mountQueueBoard(router, ctx, queues);

  const view = async () => {
    const [report, counts] = await Promise.all([ctx.health.report(), queueCounts(queues)]);
    return { ...report, queues: counts };
  };

  router.get("/admin/health", ctx.guard.require("pipeline.watch", { page: true }), async (c) => {
    const health = await view();
    ctx.views.render(c, "health", { title: "Health", health, queuesPath: QUEUES_PATH, critical: health.flags.filter((f) => f.severity === "critical"), warnings: health.flags.filter((f) => f.severity === "warning") });
  });

  router.get("/v1/admin/health", ctx.guard.require("pipeline.watch"), async (c) => {
    c.body = await view();
  });
};

export interface QueueCounts {
  name: string;
  description: string;
  paused: boolean;
  counts: Record<string, number> | null;
  error?: string;
}

/** Job counts of every watched queue, each under its own deadline. */
async function queueCounts(queues: readonly WatchedQueue[]): Promise<QueueCounts[]> {
  return Promise.all(
    queues.map(async ({ queue, description }) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const [counts, paused] = await Promise.race([
          Promise.all([queue.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children", "failed", "completed"), queue.isPaused()]),
          new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no answer within 2000 ms")), 2000))),
        ]);
        return { name: queue.name, description, paused, counts };
      } catch (err) {
        return { name: queue.name, description, paused: false, counts: null, error: shortReason(err) };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}

export type HealthView = PipelineHealthReport & { queues: QueueCounts[] };
