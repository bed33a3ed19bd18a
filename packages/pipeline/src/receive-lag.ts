import type { RedisConnection } from "./redis-connections.ts";
import type { QueuedMessage } from "@intake/storage";

/**
 * SQS receive lag: how long storage events waited in SQS before ingest received them
 * (now - SentTimestamp). The ingest loop records its latest observation in Redis, so any
 * API process can show it (/readyz, the health page) without talking to the worker.
 */
export interface ReceiveLagObservation {
  /** The largest lag of the batch, in ms. */
  lagMs: number;
  /** When ingest received the batch. */
  observedAt: Date;
  /** Messages the figure covers. */
  messages: number;
}

export interface ReceiveLagRecorder {
  record(o: ReceiveLagObservation): Promise<void>;
}

/**
 * The batch's lag, over first deliveries only: a message ingest keeps on purpose (one it
 * cannot parse, left for the dead-letter queue) comes back after every visibility timeout
 * with an ever older SentTimestamp, and would report a lag the pipeline does not have.
 * SentTimestamp is SQS's clock and `now` ours: a negative difference is clock skew, read
 * as no lag.
 */
export function receiveLagOf(messages: readonly QueuedMessage[], now: Date): ReceiveLagObservation | null {
  const firsts = messages.filter((m) => m.sentAt && m.receiveCount <= 1);
  if (firsts.length === 0) return null;
  const lagMs = Math.max(...firsts.map((m) => Math.max(0, now.getTime() - m.sentAt!.getTime())));
  return { lagMs, observedAt: now, messages: firsts.length };
}

/** One small hash under the queue prefix (deleted with the prefix's other keys). */
export function receiveLagKey(prefix: string): string {
  return `${prefix}:intake-health:sqs-receive-lag`;
}

export class RedisReceiveLag implements ReceiveLagRecorder {
  private readonly redis: RedisConnection;
  private readonly key: string;
  constructor(redis: RedisConnection, prefix: string) {
    this.redis = redis;
    this.key = receiveLagKey(prefix);
  }

  async record(o: ReceiveLagObservation): Promise<void> {
    await this.redis.hset(this.key, { lagMs: String(o.lagMs), observedAt: String(o.observedAt.getTime()), messages: String(o.messages) });
  }

  /** The latest observation, or null when ingest has received nothing yet under this prefix. */
  async read(): Promise<ReceiveLagObservation | null> {
    const h = await this.redis.hgetall(this.key);
    const lagMs = Number(h.lagMs);
    const at = Number(h.observedAt);
    if (!Number.isFinite(lagMs) || !Number.isFinite(at) || !h.lagMs || !h.observedAt) return null;
    return { lagMs, observedAt: new Date(at), messages: Number(h.messages) || 0 };
  }
}
