import { Queue, RateLimitError, UnrecoverableError, Worker, type Job } from "bullmq";
import type { RedisConnection } from "./redis-connections.ts";
import type { PipelineLogger } from "./deps.ts";
import { uploadWorkerSettings } from "./stage-workers.ts";

/**
 * The rescan's queue (rescan.ts): apart from the pipeline's stages, with a concurrency of its
 * own (RESCAN_CONCURRENCY), so a rescan of a million verified uploads never sits in front of
 * an upload that just arrived. As for the stages, the database is the truth: a job names a
 * run and an upload (or an upload whose move to quarantine/ must finish), nothing more.
 */
export const RESCAN_QUEUE = "intake-rescan";

export type RescanJobData =
  | { v: 1; kind: "item"; runId: string; uploadId: string }
  | { v: 1; kind: "move"; uploadId: string };

/** Ids BullMQ accepts (no ':', never an integer); one per run and upload, so a re-planned page adds nothing twice. */
export function rescanItemJobId(runId: string, uploadId: string): string {
  return `rescan-${runId}-${uploadId}`;
}

export function rescanMoveJobId(uploadId: string): string {
  return `rescan-move-${uploadId}`;
}

export class RescanQueue {
  readonly queue: Queue<RescanJobData>;
  private readonly o: { attempts: number; backoffMs: number };
  constructor(connection: RedisConnection, o: { prefix: string; attempts: number; backoffMs: number }) {
    this.queue = new Queue<RescanJobData>(RESCAN_QUEUE, { connection, prefix: o.prefix });
    this.queue.on("error", () => undefined); // surfaces where add() throws
    this.o = o;
  }

  /**
   * Queues the rescan of these uploads for a run; an id already queued (a page planned again
   * after a restart) is a no-op. A job that fails for good is removed (its error is in the
   * log): a scan that keeps failing records the item `failed` itself, so only an unexpected
   * error (database, storage) ends a job that way, and the planner queues the item again
   * once the queue is empty, as the reaper does a stuck upload.
   */
  async addItems(runId: string, uploadIds: readonly string[]): Promise<void> {
    if (uploadIds.length === 0) return;
    await this.queue.addBulk(
      uploadIds.map((uploadId) => ({
        name: "rescan",
        data: { v: 1 as const, kind: "item" as const, runId, uploadId },
        opts: { jobId: rescanItemJobId(runId, uploadId), attempts: this.o.attempts, backoff: { type: "exponential", delay: this.o.backoffMs }, removeOnComplete: { age: 3600, count: 1000 }, removeOnFail: true },
      })),
    );
  }

  /** Finishes the move of an upload matched on rescan (a lost or crashed job). */
  async addMove(uploadId: string): Promise<void> {
    await this.queue.add("move", { v: 1, kind: "move", uploadId }, { jobId: rescanMoveJobId(uploadId), attempts: this.o.attempts, backoff: { type: "exponential", delay: this.o.backoffMs }, removeOnComplete: true, removeOnFail: true });
  }

  /** Jobs not finished yet (waiting, delayed, prioritized, active). */
  async backlog(): Promise<number> {
    const c = await this.queue.getJobCounts("waiting", "delayed", "prioritized", "active");
    return (c.waiting ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) + (c.active ?? 0);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** Thrown by a processor to put its job back without spending an attempt: the share limiter paused the queue. */
export class RescanDeferred extends Error {
  readonly pauseMs: number;
  constructor(pauseMs: number) {
    super(`rescan deferred for ${pauseMs} ms: new uploads are waiting`);
    this.name = "RescanDeferred";
    this.pauseMs = pauseMs;
  }
}

export interface RescanWorkerOptions {
  connection: RedisConnection;
  prefix: string;
  concurrency: number;
  logger: PipelineLogger;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

/**
 * The rescan queue's worker. A RescanDeferred becomes BullMQ's manual rate limit
 * (queue.rateLimit + RateLimitError): the whole queue, on every rescan worker, waits that
 * long and the job goes back to waiting without spending an attempt.
 */
export function startRescanWorker(process: (job: Job<RescanJobData>) => Promise<unknown>, o: RescanWorkerOptions): Worker<RescanJobData> {
  const limits = new Queue(RESCAN_QUEUE, { connection: o.connection, prefix: o.prefix });
  limits.on("error", () => undefined);
  const run = async (job: Job<RescanJobData>) => {
    try {
      return await process(job);
    } catch (err) {
      if (err instanceof RescanDeferred) {
        await limits.rateLimit(err.pauseMs);
        throw new RateLimitError();
      }
      if ((err as Error).name === "UploadGoneError") throw new UnrecoverableError((err as Error).message);
      throw err;
    }
  };
  const worker = new Worker<RescanJobData>(RESCAN_QUEUE, run, uploadWorkerSettings(o));
  worker.on("failed", (job, err) => {
    if (err.name === "RateLimitError") return;
    const final = !job || job.attemptsMade >= (job.opts.attempts ?? 1) || err.name === "UnrecoverableError";
    o.logger[final ? "error" : "warn"]({ stage: "rescan", jobId: job?.id, uploadId: job?.data.uploadId, attemptsMade: job?.attemptsMade, err: { name: err.name, message: err.message } }, final ? "rescan job failed for good" : "rescan job failed; will retry");
  });
  worker.on("error", (err) => o.logger.error({ stage: "rescan", err }, "rescan worker error"));
  const close = worker.close.bind(worker);
  worker.close = async (force?: boolean) => {
    await close(force);
    await limits.close();
  };
  return worker;
}
