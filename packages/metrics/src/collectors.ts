import { QUEUE_STATES } from "./definitions.ts";
import type { ClamdSource, HealthSource, QueueSource } from "./sources.ts";

/**
 * Scrape-time readings of shared state: queue depths from Redis, clamd's VERSION, the
 * health checks. Each is read at most once per scrape however many gauges show it (the
 * registry collects all metrics at once), and each is bounded in time: a Redis or clamd
 * that does not answer must not hold the scrape past Prometheus's scrape_timeout (10 s by
 * default). A worker's Redis connection never gives up a command (BullMQ requires
 * maxRetriesPerRequest: null), so without the bound a scrape during an outage would hang.
 */
export const COLLECT_TIMEOUT_MS = 2500;

/** The same reading for every gauge of one scrape: the call in flight, or one that ended within `ttlMs`. */
export function sharedReading<T>(read: () => Promise<T>, ttlMs = 1000): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | null = null;
  return () => {
    const now = Date.now();
    if (!last || now - last.at > ttlMs) last = { at: now, value: read() };
    return last.value;
  };
}

export async function withinTime<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  work.catch(() => undefined); // a late failure after the timeout is not an unhandled rejection
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface QueueReading {
  queue: string;
  counts: Record<(typeof QUEUE_STATES)[number], number>;
  oldestWaitingSeconds: number;
}

/** Depth by state and the oldest waiting job's age, for every queue (one getJobCounts and one LRANGE each). */
export async function readQueues(queues: readonly QueueSource[], now = Date.now()): Promise<QueueReading[]> {
  return Promise.all(
    queues.map(async (q) => {
      const [raw, oldest] = await Promise.all([q.getJobCounts(...QUEUE_STATES), q.getWaiting(0, 0)]);
      const counts = Object.fromEntries(QUEUE_STATES.map((s) => [s, raw[s] ?? 0])) as QueueReading["counts"];
      const job = oldest[0];
      // A delayed job (a retry's backoff, a delay on purpose) starts waiting when its delay ends.
      const since = job ? job.timestamp + (job.opts?.delay ?? 0) : now;
      return { queue: q.name, counts, oldestWaitingSeconds: Math.max(0, (now - since) / 1000) };
    }),
  );
}

export interface ClamdReading {
  up: boolean;
  testSignaturesOnly?: boolean;
  signatureVersion?: number;
  signatureAgeSeconds?: number;
}

export async function readClamd(clamd: ClamdSource, now = Date.now()): Promise<ClamdReading> {
  const v = await clamd.version();
  // clamd names a daily database version only when an official one is loaded ("none" when
  // only custom or test databases are: @intake/scanner loadsTestSignaturesOnly).
  const testSignaturesOnly = v.signatures === "none";
  const version = Number(v.signatures);
  const reading: ClamdReading = { up: true, testSignaturesOnly, signatureVersion: Number.isFinite(version) ? version : 0 };
  const date = signatureDate(v);
  if (date !== null) reading.signatureAgeSeconds = Math.max(0, (now - date) / 1000);
  return reading;
}

/**
 * The database's date as VERSION prints it ("ClamAV 1.4.6/27441/Sat Nov 21 09:25:02 2026").
 * clamd writes it with ctime(), in its host's local time zone, without naming the zone;
 * it is read as UTC, which servers usually run in. A clamd host in another zone is off by
 * its UTC offset: hours, against a threshold of days (SIGNATURE_MAX_AGE_HOURS, default 48).
 */
export function signatureDate(v: { signaturesDate?: string; raw?: string }): number | null {
  const text = v.signaturesDate ?? v.raw?.split("/").slice(2).join("/").trim();
  if (!text) return null;
  const at = Date.parse(`${text} UTC`);
  return Number.isFinite(at) ? at : null;
}

export interface HealthReading {
  deadLetterDepth: number | null;
  oldestInProcessing: { ageSeconds: number } | null;
  held: { count: number; oldestSeconds: number } | null;
}

export async function readHealth(health: HealthSource): Promise<HealthReading> {
  const [deadLetterDepth, oldestInProcessing, held] = await Promise.all([health.deadLetterDepth(), health.oldestInProcessing(), health.held ? health.held() : Promise.resolve(null)]);
  return { deadLetterDepth, oldestInProcessing, held };
}
