import { Queue } from "bullmq";
import { connectRedis, type RedisConnection, type RedisEndpoint } from "./redis-connections.ts";
import { DependencyUnavailableError } from "@intake/domain";

/**
 * The pipeline's stages, one BullMQ queue each, so an operator can watch (and scale) them
 * one by one: inspect (size + magic bytes) -> scan (ClamAV + sha256) -> finalize (copy to
 * verified/ or quarantine/). The database is the truth and the queues are triggers: a lost
 * job is found again by the reaper's reconcile step.
 */
export const STAGES = ["inspect", "scan", "finalize"] as const;
export type Stage = (typeof STAGES)[number];

/**
 * A job says which upload, nothing more: everything a stage acts on (the status, the ETag
 * of the checked bytes) is in the database, so a job the reaper re-creates after a Redis
 * loss is as good as the original.
 */
export interface StageJobData {
  v: 1;
  uploadId: string;
}

/**
 * One job id per (stage, upload): an SQS redelivery, a duplicate event and the client's
 * complete call collapse into one job while it exists. BullMQ ids may not contain ':' and
 * a removed job frees its id, so this is a first filter only; the conditional status update
 * in the database is what makes a second verdict impossible.
 */
export function stageJobId(stage: Stage, uploadId: string): string {
  return `${stage}-${uploadId}`;
}

export function queueName(stage: Stage): string {
  return `intake-${stage}`;
}

export interface StageQueueOptions {
  redis: RedisEndpoint;
  /** Every key of every queue starts with it; on a cluster it holds a hash tag (config.ts). */
  prefix: string;
  attempts: number;
  backoffMs: number;
}

/** A producer that fails fast when Redis is away, so the caller can keep the SQS message. */
export function createProducerConnection(endpoint: RedisEndpoint): RedisConnection {
  const redis = connectRedis(endpoint, "producer");
  // Without a listener ioredis reports every failed reconnect as an unhandled error event;
  // the failure that matters surfaces where enqueue() throws.
  redis.on("error", () => undefined);
  return redis;
}

/** An enqueue that has not reached Redis by then is reported as failed (the caller keeps its trigger). */
export const ENQUEUE_TIMEOUT_MS = 5000;

export class StageQueues {
  private readonly queues: Map<Stage, Queue>;
  private readonly connection: RedisConnection;
  private readonly opts: StageQueueOptions;

  constructor(opts: StageQueueOptions, connection: RedisConnection = createProducerConnection(opts.redis)) {
    this.opts = opts;
    this.connection = connection;
    this.queues = new Map(
      STAGES.map((s) => {
        const q = new Queue(queueName(s), { connection, prefix: opts.prefix });
        q.on("error", () => undefined); // connection errors surface where enqueue() throws
        return [s, q];
      }),
    );
  }

  queue(stage: Stage): Queue {
    return this.queues.get(stage)!;
  }

  /** Enqueues a stage for an upload; a no-op while a job with the same id exists. */
  async enqueue(stage: Stage, uploadId: string, opts: { jobId?: string } = {}): Promise<void> {
    // A connection that dropped (ioredis is reconnecting, or gave up) means Redis is away:
    // say so at once so the caller keeps its trigger. One still being set up gets the
    // bounded wait below.
    if (["reconnecting", "close", "end"].includes(this.connection.status)) {
      throw new DependencyUnavailableError("redis", `enqueue ${stage} for upload ${uploadId}: the Redis connection is ${this.connection.status}`);
    }
    const data: StageJobData = { v: 1, uploadId };
    // enableOfflineQueue: false makes commands fail fast, but Queue.add first waits for the
    // connection to become ready, without a limit: with Redis down it hangs, holding the
    // SQS message handler (seen with BullMQ 6.7). Bound the wait; if the add completes
    // later anyway it is the same deterministic job id, so no harm is done.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DependencyUnavailableError("redis", `enqueue ${stage} for upload ${uploadId} timed out after ${ENQUEUE_TIMEOUT_MS} ms`)), ENQUEUE_TIMEOUT_MS);
    });
    const add = this.queue(stage).add(stage, data, {
      jobId: opts.jobId ?? stageJobId(stage, uploadId),
      attempts: this.opts.attempts,
      backoff: { type: "exponential", delay: this.opts.backoffMs },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
    add.catch(() => undefined); // its failure is reported through the race below
    try {
      await Promise.race([add, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Queues a stage for an upload unless a live job for it exists: the reaper's re-queue.
   * Waiting, delayed and active jobs are left alone, whatever the row says: BullMQ owns
   * them, and an active job whose worker died is moved back to waiting by BullMQ's own
   * stalled check once its lock expires. Duplicating them is what once gave one upload
   * four concurrent scans. A finished job (completed, or failed for good) still holds the
   * deterministic id, which would make the add a silent no-op: it is removed first.
   */
  async requeue(stage: Stage, uploadId: string): Promise<"queued" | "live"> {
    const job = await this.queue(stage).getJob(stageJobId(stage, uploadId));
    if (job) {
      const state = await job.getState();
      if (state !== "completed" && state !== "failed" && state !== "unknown") return "live";
      // Removing a job that was picked up meanwhile fails (it is locked): live after all.
      const removed = await job.remove().then(() => true, () => false);
      if (!removed) return "live";
    }
    await this.enqueue(stage, uploadId);
    return "queued";
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.connection.disconnect();
  }
}
