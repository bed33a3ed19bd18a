import { Queue, UnrecoverableError, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { WebhookRepository } from "@intake/db";
import { deliverOnce, DeliveryAttemptFailed, type DeliveryDeps, type DeliveryLogger } from "./delivery.ts";

/** The webhook delivery queue (the operators' dashboard lists it beside the stages). */
export const WEBHOOK_QUEUE = "intake-webhooks";

export interface WebhookJobData {
  v: 1;
  deliveryId: string;
}

/**
 * One job per delivery round: the delivery's id for its first round, `<id>-r<n>` for the
 * n-th redelivery. BullMQ keeps a finished job's id (adding it again is a no-op), which is
 * what keeps the relay's at-least-once hand-over from sending twice; a redelivery needs an
 * id of its own. Delivery ids (dlv_...) hold no ':' and are never integers.
 */
export function webhookJobId(deliveryId: string, round: number): string {
  return round === 0 ? deliveryId : `${deliveryId}-r${round}`;
}

export interface WebhookQueueOptions {
  connection: Redis;
  prefix: string;
  attempts: number;
  backoffMs: number;
}

/** The producer side: hands a delivery round to BullMQ with the configured retries. */
export class WebhookQueue {
  readonly queue: Queue<WebhookJobData>;
  private readonly o: WebhookQueueOptions;
  constructor(o: WebhookQueueOptions) {
    this.o = o;
    this.queue = new Queue<WebhookJobData>(WEBHOOK_QUEUE, { connection: o.connection, prefix: o.prefix });
    this.queue.on("error", () => undefined); // surfaces where add() throws
  }

  async add(deliveryId: string, round: number): Promise<void> {
    await this.queue.add("deliver", { v: 1, deliveryId }, {
      jobId: webhookJobId(deliveryId, round),
      attempts: this.o.attempts,
      // BullMQ's exponential backoff: attempt n+1 waits backoffMs * 2^(n-1).
      backoff: { type: "exponential", delay: this.o.backoffMs },
      // Kept a day: long enough that the relay's hand-over of a row it read before another
      // process marked it queued finds the id taken.
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

export interface RelayOptions {
  webhooks: WebhookRepository;
  queue: WebhookQueue;
  logger: DeliveryLogger;
  /** How often the outbox is read without a nudge (a writer in another process, a crash before enqueue). */
  pollMs?: number;
  batch?: number;
}

/**
 * Moves the outbox to the queue, at least once: a delivery row is added to BullMQ first and
 * marked queued after, so a crash in between leaves it unmarked and the next pass adds it
 * again (a no-op on the kept job id). Passes never overlap in one process; a nudge during a
 * pass runs one more after it. Several processes may relay at once: the job id keeps one job.
 */
export class OutboxRelay {
  private readonly o: Required<RelayOptions>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(o: RelayOptions) {
    this.o = { pollMs: 1000, batch: 100, ...o };
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.run().finally(tick), this.o.pollMs);
    };
    tick();
    this.nudge();
  }

  /** Runs a pass soon (after a commit that wrote deliveries). */
  nudge(): void {
    if (this.stopped) return;
    void this.run();
  }

  /** One pass, or the one already running (and one more after it). */
  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.pass();
        } catch (err) {
          this.o.logger.warn({ err: { message: (err as Error).message } }, "webhook relay pass failed; the next one retries");
        }
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = null));
    return this.running;
  }

  /** Hands every unqueued delivery to the queue; resolves with how many it handed over. */
  async pass(): Promise<number> {
    let moved = 0;
    for (;;) {
      const rows = await this.o.webhooks.unqueued(this.o.batch);
      for (const r of rows) {
        await this.o.queue.add(r.id, r.round);
        await this.o.webhooks.markEnqueued(r.id, r.round);
        moved += 1;
      }
      if (rows.length < this.o.batch || this.stopped) return moved;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}

export interface WebhookWorkerOptions {
  connection: Redis;
  prefix: string;
  concurrency: number;
}

/** The BullMQ worker of the webhook queue: each job is one attempt at one delivery. */
export function startWebhookWorker(deps: DeliveryDeps, o: WebhookWorkerOptions): Worker<WebhookJobData> {
  const run = async (job: Job<WebhookJobData>) => {
    try {
      return await deliverOnce(deps, job.data.deliveryId, { made: job.attemptsMade, max: job.opts.attempts ?? 1 });
    } catch (err) {
      if (err instanceof DeliveryAttemptFailed) throw err;
      // Anything else is ours (the database, a bug): retried like a failed attempt, but
      // without a record of a POST that never happened.
      deps.logger.error({ deliveryId: job.data.deliveryId, err: { name: (err as Error).name, message: (err as Error).message } }, "webhook delivery job failed");
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) throw new UnrecoverableError((err as Error).message);
      throw err;
    }
  };
  const worker = new Worker<WebhookJobData>(WEBHOOK_QUEUE, run, { connection: o.connection, prefix: o.prefix, concurrency: o.concurrency, maxStalledCount: 2 });
  worker.on("error", (err) => deps.logger.error({ err: { message: err.message } }, "webhook worker error"));
  return worker;
}
