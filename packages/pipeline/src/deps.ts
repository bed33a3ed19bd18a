import type { Readable } from "node:stream";
import type { UploadRepository } from "@intake/db";
import type { ObjectStore } from "@intake/storage";
import type { ScanOutcome } from "./decisions.ts";
import type { StageQueues } from "./stage-queues.ts";

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
  version(): Promise<{ engine: string; signatures: string; raw: string }>;
}

/** The upload rules the stages enforce (from config.policy). */
export interface InspectionPolicy {
  allowedTypes: readonly string[];
  maxSize: number;
}

/** Explicit dependencies of the stage processors; each takes only what it uses. */
export interface StageDeps {
  repository: UploadRepository;
  store: ObjectStore;
  queues: Pick<StageQueues, "enqueue">;
  logger: PipelineLogger;
}
