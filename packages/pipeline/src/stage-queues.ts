import { Queue } from "bullmq";
import { Redis } from "ioredis";

/**
 * The pipeline's stages, one BullMQ queue each, so an operator can watch (and scale) them
 * one by one: inspect (size + magic bytes) -> scan (ClamAV + sha256) -> finalize (copy to
 * verified/ or quarantine/). The database is the truth and the queues are triggers: a lost
 * job is found again by the reaper's reconcile step.
 */
export const STAGES = ["inspect", "scan", "finalize"] as const;
export type Stage = (typeof STAGES)[number];

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
  redisUrl: string;
  prefix: string;
  attempts: number;
  backoffMs: number;
}

/** A producer that fails fast when Redis is away, so the caller can keep the SQS message. */
export function createProducerConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
}

export class StageQueues {
  private readonly queues: Map<Stage, Queue>;
  private readonly connection: Redis;
  private readonly opts: StageQueueOptions;

  constructor(opts: StageQueueOptions, connection: Redis = createProducerConnection(opts.redisUrl)) {
    this.opts = opts;
    this.connection = connection;
    this.queues = new Map(STAGES.map((s) => [s, new Queue(queueName(s), { connection, prefix: opts.prefix })]));
  }

  queue(stage: Stage): Queue {
    return this.queues.get(stage)!;
  }

  /** Enqueues a stage for an upload; a no-op while a job with the same id exists. */
  async enqueue(stage: Stage, uploadId: string, opts: { jobId?: string } = {}): Promise<void> {
    const data: StageJobData = { v: 1, uploadId };
    await this.queue(stage).add(stage, data, {
      jobId: opts.jobId ?? stageJobId(stage, uploadId),
      attempts: this.opts.attempts,
      backoff: { type: "exponential", delay: this.opts.backoffMs },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.connection.disconnect();
  }
}
