import { Queue, type Worker } from "bullmq";
import type { RedisConnection } from "./redis-connections.ts";
import { DependencyUnavailableError } from "@intake/domain";
import type { StageJob } from "./progress.ts";
import { ENQUEUE_TIMEOUT_MS, type StageJobData } from "./stage-queues.ts";
import { startJobWorker, type StageWorkerOptions } from "./stage-workers.ts";

/**
 * The recheck of released uploads (recheck.ts): one BullMQ queue of its own, apart from the
 * pipeline's stages, so an operator sees the releases people asked for apart from the
 * uploads that arrive. As for the stages, the database is the truth and the job a trigger:
 * it names the upload and nothing more (who released it and any override are on the row),
 * so the reaper can queue a lost recheck again from the row alone.
 */
export const RECHECK_QUEUE = "intake-recheck";

export interface RecheckJobData {
  v: 1;
  uploadId: string;
}

/** One id per upload: a release queued twice (a retried request, the reaper) is one job. */
export function recheckJobId(uploadId: string): string {
  return `recheck-${uploadId}`;
}

export interface RecheckQueueOptions {
  prefix: string;
  attempts: number;
  backoffMs: number;
}

export class RecheckQueue {
  readonly queue: Queue<RecheckJobData>;
  private readonly connection: RedisConnection;
  private readonly opts: RecheckQueueOptions;

  /** `connection` should fail fast (createProducerConnection): a caller must learn that Redis is away. */
  constructor(connection: RedisConnection, opts: RecheckQueueOptions) {
    this.connection = connection;
    this.opts = opts;
    this.queue = new Queue<RecheckJobData>(RECHECK_QUEUE, { connection, prefix: opts.prefix });
    this.queue.on("error", () => undefined); // connection errors surface where enqueue() throws
  }

  /**
   * Queues the recheck unless a live job for the upload exists. An upload may be released
   * more than once (a recheck that found something, then a second release): the finished
   * job of the first still holds the id, which would make the add a silent no-op, so it is
   * removed first. A live job (waiting, delayed, active) is left alone: it reads the row when
   * it runs; should it be finishing the previous recheck, the reaper queues the next one.
   */
  async requeue(uploadId: string): Promise<"queued" | "live"> {
    if (["reconnecting", "close", "end"].includes(this.connection.status)) {
      throw new DependencyUnavailableError("redis", `queue the recheck of upload ${uploadId}: the Redis connection is ${this.connection.status}`);
    }
    return withinDeadline(`queue the recheck of upload ${uploadId}`, async () => {
      const job = await this.queue.getJob(recheckJobId(uploadId));
      if (job) {
        const state = await job.getState();
        if (state !== "completed" && state !== "failed" && state !== "unknown") return "live" as const;
        if (!(await job.remove().then(() => true, () => false))) return "live" as const;
      }
      const data: RecheckJobData = { v: 1, uploadId };
      await this.queue.add("recheck", data, {
        jobId: recheckJobId(uploadId),
        attempts: this.opts.attempts,
        backoff: { type: "exponential", delay: this.opts.backoffMs },
        removeOnComplete: { age: 3600, count: 1000 },
        removeOnFail: { age: 7 * 24 * 3600 },
      });
      return "queued" as const;
    });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** Queue.add waits for a connection without a limit (see StageQueues.enqueue): bound it. */
async function withinDeadline<T>(what: string, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DependencyUnavailableError("redis", `${what} timed out after ${ENQUEUE_TIMEOUT_MS} ms`)), ENQUEUE_TIMEOUT_MS);
  });
  const running = work();
  running.catch(() => undefined); // reported through the race
  try {
    return await Promise.race([running, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The recheck queue's worker: the same wiring as the stages' (startJobWorker). */
export function startRecheckWorker(process: (job: StageJob) => Promise<unknown>, o: StageWorkerOptions): Worker<StageJobData> {
  return startJobWorker(RECHECK_QUEUE, "recheck", process, o);
}
