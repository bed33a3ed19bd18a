/**
 * What the scrape-time gauges read, as small structural interfaces: BullMQ's Queue, the
 * pipeline's Scanner and the operators' health checks fit them without this package
 * importing any of them (no BullMQ or clamd types here).
 */

/** A BullMQ Queue, as far as its depth and its oldest waiting job go. */
export interface QueueSource {
  readonly name: string;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
  /** BullMQ's getWaiting(0, 0): the oldest waiting job (ascending order). */
  getWaiting(start?: number, end?: number): Promise<readonly (QueuedJobTimes | undefined)[]>;
}

export interface QueuedJobTimes {
  /** When the job was added (ms since the epoch). */
  timestamp: number;
  opts?: { delay?: number };
}

/** clamd's VERSION, as the pipeline's Scanner and @intake/scanner report it. */
export interface ClamdSource {
  version(): Promise<{ signatures: string; signaturesDate?: string; raw?: string }>;
}

/**
 * The operators' health checks (dead-letter queue depth, the upload in processing that moved
 * least recently), read when scraped. null: unknown right now (not configured, or failed).
 */
export interface HealthSource {
  deadLetterDepth(): Promise<number | null>;
  /** null when unknown; { ageSeconds: 0 } when nothing is in processing. */
  oldestInProcessing(): Promise<{ ageSeconds: number } | null>;
  /** STUCK_AFTER_SECONDS. */
  stuckAfterSeconds: number;
  /** Uploads held for fresh signatures; null when unknown. */
  held?(): Promise<{ count: number; oldestSeconds: number } | null>;
}

/** The part of @intake/pipeline's PipelineHealthReport the gauges read. */
export interface HealthReportView {
  sqs: { deadLetters: { depth: number; inFlight: number } | null };
  processing: { oldest: { ageSeconds: number } | null; stuckAfterSeconds: number; error?: string };
  held?: { count: number; oldestSeconds: number } | null;
}

/**
 * The health module's report (@intake/pipeline createPipelineHealth) as a HealthSource: the
 * metrics, /readyz and the health page then state the same facts, gathered once (the
 * report is cached for a moment).
 */
export function healthFromReport(report: () => Promise<HealthReportView>, stuckAfterSeconds: number): HealthSource {
  return {
    stuckAfterSeconds,
    deadLetterDepth: async () => {
      const dlq = (await report()).sqs.deadLetters;
      return dlq ? dlq.depth + dlq.inFlight : null;
    },
    oldestInProcessing: async () => {
      const p = (await report()).processing;
      if (p.error) return null;
      return { ageSeconds: p.oldest?.ageSeconds ?? 0 };
    },
    held: async () => (await report()).held ?? null,
  };
}

export interface ScrapeSources {
  queues?: readonly QueueSource[];
  clamd?: ClamdSource;
  /** SIGNATURE_MAX_AGE_HOURS (config.signatures.maxAgeHours). */
  signatureMaxAgeHours?: number;
  health?: HealthSource;
}
