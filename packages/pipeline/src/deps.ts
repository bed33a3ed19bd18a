import type { Readable } from "node:stream";
import type { Actor, AuditEntry, TransitionResult, UploadFindings } from "@intake/db";
import type { Upload, UploadEvent } from "@intake/domain";
import type { ObjectStore } from "@intake/storage";
import type { ScanOutcome } from "./decisions.ts";
import type { ImageStripper } from "./image-stripping.ts";
import type { StageQueues } from "./stage-queues.ts";
import type { SignatureFacts } from "./health.ts";
import type { HoldReason } from "./signature-watch.ts";

/** What the stages log through (pino's Logger fits). */
export interface PipelineLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * The malware scanner as the scan stage needs it: @intake/scanner's MalwareScanner
 * (clamd INSTREAM, sha256 on the same pass) satisfies it structurally. scan() throws
 * ScanFailedError for transient failures (clamd down, dropped connection, empty reply,
 * timeout) and never reports those as clean.
 */
export interface Scanner {
  scan(stream: Readable): Promise<ScanOutcome & { bytes: number; sha256: string }>;
  version(): Promise<{ engine: string; signatures: string; signaturesDate?: string; raw: string }>;
}

/**
 * Whether a clean result may be issued with the signatures clamd has now (signature-watch.ts):
 * a reason to hold it, or null. Absent from the deps: clean results are always issued.
 */
export interface SignatureGate {
  holdReason(): Promise<HoldReason | null>;
  current(): Promise<{ facts: SignatureFacts }>;
}

/** The deployment's upload rules (config.policy): what an upload recorded before tenant policies is judged by (checkRulesFor). */
export interface InspectionPolicy {
  allowedTypes: readonly string[];
  maxSize: number;
}

/**
 * The upload rows as the stages read and change them. @intake/db's UploadRepository is
 * one (on PostgreSQL or SQLite); the stages see nothing of how it stores them.
 */
export interface UploadStore {
  getById(id: string): Promise<Upload | null>;
  getByObjectKey(key: string): Promise<Upload | null>;
  /** Applies a state-machine event as one guarded change (applied: false when it lost). */
  transition(id: string, event: UploadEvent, actor: Actor, findings?: UploadFindings, now?: Date): Promise<TransitionResult>;
  /** Counts a processing attempt (retries, stalled recoveries, reaper re-enqueues). */
  countAttempt(id: string): Promise<void>;
  /** Marks the row as worked on now (updatedAt), whatever its status: a heartbeat. */
  touch(id: string, now?: Date): Promise<void>;
}

/** The reaper's sweeps over the rows, on top of UploadStore (UploadRepository again). */
export interface UploadSweeps extends UploadStore {
  findExpiredPending(now: Date, graceMs: number): Promise<Upload[]>;
  findStaleMultipart(olderThan: Date): Promise<Upload[]>;
  /** Oldest first, paged on (updatedAt, id) from `after`. */
  findStuck(before: Date, limit?: number, after?: { updatedAt: Date; id: string }): Promise<Upload[]>;
  /** Quarantined before `before` and past any retention a reviewer set (as of `now`). */
  findQuarantinedBefore(before: Date, limit?: number, now?: Date): Promise<Upload[]>;
  /** Quarantined longer than each one's recorded retention (else `defaultDays`), past any a reviewer set. */
  findPastRetention(now: Date, defaultDays: number, limit?: number): Promise<Upload[]>;
  /** False when the row was already purged (another replica got there first). */
  markPurged(id: string, now?: Date): Promise<boolean>;
}

/** Rows for actions outside the state machine (@intake/db's AuditLog). */
export interface AuditTrail {
  record(entry: AuditEntry, now?: Date): Promise<void>;
}

/** Explicit dependencies of the stage processors; each takes only what it uses. */
export interface StageDeps {
  repository: UploadStore;
  store: ObjectStore;
  queues: Pick<StageQueues, "enqueue">;
  logger: PipelineLogger;
  /** Uploads declared at most this size are checked in one pass (one-pass.ts); absent: none. */
  onePassMaxBytes?: number;
  /**
   * This process also runs the finalize stage (its workers may move bytes to verified/ and
   * quarantine/): the scan stage then finalizes what it checked itself, from the bytes it
   * read (one-pass.ts, staged-copy.ts). Without it the scan stage stops at the verdict and
   * queues finalize, as a deployment that runs the roles apart expects.
   */
  finalizesInline?: boolean;
  /** Where the stages report what they did (@intake/metrics); absent: nowhere. */
  metrics?: PipelineMetrics;
  /**
   * Re-encodes images without their metadata (image-stripping.ts), for uploads whose policy
   * asks for it. Absent: such an upload is never promoted by this process (fail closed).
   */
  images?: ImageStripper;
  /** Holds clean results made with stale or test-only signatures (held); absent: none is held. */
  signatures?: SignatureGate;
}

/**
 * The pipeline's metrics hooks (@intake/metrics implements them with prom-client; the
 * stages know nothing of it). Each call is a counter increment or a histogram observation:
 * synchronous, no I/O, cheap enough for the hot path.
 */
export interface PipelineMetrics {
  /** An upload reached verified or quarantined: called by the run whose transition applied. */
  uploadFinished(upload: Pick<Upload, "status" | "reason" | "createdAt" | "uploadedAt" | "decidedAt" | "finishedAt">): void;
  /**
   * A released upload's recheck ended it again (rechecking -> verified or quarantined): called
   * by the run whose transition applied. Not an uploadFinished: the upload was counted at its
   * first verdict, and a release must not count it twice.
   */
  recheckFinished(upload: Pick<Upload, "status" | "reason">): void;
  /** A stage's own work on one upload, in ms (queue wait excluded). */
  stageDone(stage: "inspect" | "scan" | "finalize", path: "staged" | "one_pass", ms: number): void;
  /** A worker picked a job up on its first attempt, after it waited `waitMs` in its queue. */
  jobPicked(queue: string, waitMs: number): void;
  jobFinished(queue: string, outcome: "completed" | "retried" | "failed"): void;
  /** A clean result was held instead of issued (signatures_stale | test_signatures_only). */
  verdictHeld?(reason: string): void;
  /** The worker saw clamd's signature version change. */
  signaturesChanged?(): void;
  /** A verdict cache lookup before clamd (verdict-cache.ts): hit_clean | hit_malware | miss. */
  verdictCacheLookup?(result: "hit_clean" | "hit_malware" | "miss"): void;
  /** A reaper pass ended (ReapSummary's counts). */
  reaperPass(summary: { expired: number; arrivedLate: number; multipartAborted: number; orphansAborted: number; requeued: number; purged: number; stagingSwept: number; inProgress: number }): void;
}
