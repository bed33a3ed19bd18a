import { Queue, UnrecoverableError, Worker, type Job } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import type { StrandedCursor, WebhookRepository } from "@intake/db";
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
  /** A BullMQ connection to one server or a cluster (@intake/pipeline connectRedis). */
  connection: Redis | Cluster;
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

  /** The BullMQ state of a round's job; "unknown" when Redis has no such job (lost or removed). */
  async state(deliveryId: string, round: number): Promise<string> {
    return this.queue.getJobState(webhookJobId(deliveryId, round));
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** Job states in which the job will still run (or is running): the sweep never doubles these. */
const LIVE_STATES = new Set(["waiting", "delayed", "active", "prioritized", "waiting-children"]);

/**
 * How long a queued delivery is left alone before the sweep checks its job: well beyond one
 * attempt's timeout, so the sweep never races a hand-over or an attempt in progress.
 */
export function strandedGraceMs(attemptTimeoutMs: number): number {
  return Math.max(5 * 60_000, attemptTimeoutMs * 2);
}

export interface SweepResult {
  /** Pending, queued deliveries whose job was looked up. */
  checked: number;
  /** Queued again under the same job id (their job was missing). */
  requeued: number;
  /** Given a new round (their job had finished without recording an outcome). */
  newRounds: number;
}

export interface RelayOptions {
  webhooks: WebhookRepository;
  queue: WebhookQueue;
  logger: DeliveryLogger;
  /** How often the outbox is read without a nudge (a writer in another process, a crash before enqueue). */
  pollMs?: number;
  batch?: number;
  /** How often a started relay sweeps for queued deliveries whose job is gone or finished. */
  sweepEveryMs?: number;
  /** A queued delivery younger than this is not swept (see strandedGraceMs). */
  sweepGraceMs?: number;
  /** Deliveries one sweep looks at; the next sweep continues after the last one. */
  sweepBatch?: number;
}

/**
 * Moves the outbox to the queue, at least once: a delivery row is added to BullMQ first and
 * marked queued after, so a crash in between leaves it unmarked and the next pass adds it
 * again (a no-op on the kept job id). Passes never overlap in one process; a nudge during a
 * pass runs one more after it. Several processes may relay at once: the job id keeps one job.
 *
 * A started relay also sweeps, at a slower cadence: a delivery marked queued whose job Redis
 * lost (a flush, a failover without persistence, a removal from the dashboard) is queued
 * again under the same job id, and one whose job finished without recording an outcome (the
 * database failed on its last attempt) gets a new round, as a redelivery does. Either way
 * the event, and so the webhook-id, is the same: at least once, never lost.
 */
export class OutboxRelay {
  private readonly o: Required<RelayOptions>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private started = false;
  private nextSweepAt = 0;
  private sweepCursor: StrandedCursor | null = null;

  constructor(o: RelayOptions) {
    this.o = { pollMs: 1000, batch: 100, sweepEveryMs: 30_000, sweepGraceMs: strandedGraceMs(0), sweepBatch: 100, ...o };
  }

  start(): void {
    this.started = true;
    // The first sweep waits a full cadence: a process just started has other work first.
    this.nextSweepAt = Date.now() + this.o.sweepEveryMs;
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
        if (this.started && !this.stopped && Date.now() >= this.nextSweepAt) {
          this.nextSweepAt = Date.now() + this.o.sweepEveryMs;
          try {
            await this.sweep();
          } catch (err) {
            this.o.logger.warn({ err: { message: (err as Error).message } }, "webhook relay sweep failed; the next one retries");
          }
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

  /**
   * Looks up the job of up to sweepBatch pending deliveries queued longer than the grace ago,
   * oldest first, continuing after the previous sweep's last row (back to the start once a
   * page comes back short). A job still waiting, delayed or active is left alone.
   */
  async sweep(now = new Date()): Promise<SweepResult> {
    const rows = await this.o.webhooks.enqueuedPending(new Date(now.getTime() - this.o.sweepGraceMs), this.sweepCursor, this.o.sweepBatch);
    const last = rows.at(-1);
    this.sweepCursor = rows.length < this.o.sweepBatch || !last ? null : { id: last.id, enqueuedAt: last.enqueuedAt };
    const result: SweepResult = { checked: 0, requeued: 0, newRounds: 0 };
    for (const r of rows) {
      if (this.stopped) break;
      result.checked += 1;
      const state = await this.o.queue.state(r.id, r.round);
      if (LIVE_STATES.has(state)) continue;
      if (state === "completed" || state === "failed") {
        // The finished job keeps its id, so this round cannot be queued again.
        if (!(await this.o.webhooks.startNewRound(r.id, r.round, now))) continue; // delivered meanwhile, or another sweep won
        result.newRounds += 1;
        this.o.logger.warn({ deliveryId: r.id, round: r.round, jobState: state }, "webhook delivery's job finished without an outcome; queued as a new round");
      } else {
        // No such job: its id is free, and adding it is a no-op should another sweep just have.
        await this.o.queue.add(r.id, r.round);
        await this.o.webhooks.markRequeued(r.id, r.round, now);
        result.requeued += 1;
        this.o.logger.warn({ deliveryId: r.id, round: r.round, jobState: state }, "webhook delivery's job was missing from the queue; queued again");
      }
    }
    // New rounds are unqueued rows: hand them over now rather than at the next poll.
    if (result.newRounds > 0) await this.pass();
    return result;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}

export interface WebhookWorkerOptions {
  /** A BullMQ connection to one server or a cluster (@intake/pipeline connectRedis). */
  connection: Redis | Cluster;
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
      // without a record of a POST that never happened. Past the last attempt the job fails
      // with the delivery still pending: the relay's sweep gives it a new round.
      deps.logger.error({ deliveryId: job.data.deliveryId, err: { name: (err as Error).name, message: (err as Error).message } }, "webhook delivery job failed");
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) throw new UnrecoverableError((err as Error).message);
      throw err;
    }
  };
  const worker = new Worker<WebhookJobData>(WEBHOOK_QUEUE, run, { connection: o.connection, prefix: o.prefix, concurrency: o.concurrency, maxStalledCount: 2 });
  worker.on("error", (err) => deps.logger.error({ err: { message: err.message } }, "webhook worker error"));
  return worker;
}
