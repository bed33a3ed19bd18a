import { pipeline, Transform } from "node:stream";
import { UnrecoverableError } from "bullmq";
import { isTextType, quarantine } from "@intake/domain";
import { finalVerdict, scanVerdict } from "./decisions.ts";
import type { Scanner, StageDeps } from "./deps.ts";
import { ensureNextStage, isLastAttempt, recordVerdict, type StageJob } from "./progress.ts";
import { TextContentCheck } from "./text-content.ts";

/**
 * The scan stage: the object streams from storage into clamd INSTREAM once; the scanner
 * hashes the same bytes (sha256) and text formats are content-checked on the same pass.
 * Nothing is buffered whole and nothing touches local disk, so memory stays flat whatever
 * the object size.
 *
 * Fail closed: a scanner failure (clamd down, dropped connection, empty reply, timeout:
 * ScanFailedError) is thrown so BullMQ retries with exponential backoff; on the last
 * attempt the upload is quarantined with scan_error instead. Nothing here can produce a
 * clean verdict without clamd having said OK about every byte of the object.
 */
export type ScanDeps = StageDeps & { scanner: Scanner; scannerVersion: ScannerVersionCache };

export async function processScan(deps: ScanDeps, job: StageJob): Promise<void> {
  const { uploadId } = job.data;
  const upload = await deps.repository.getById(uploadId);
  if (!upload) throw new UnrecoverableError(`upload ${uploadId} does not exist`);
  if (upload.status !== "scanning") return ensureNextStage(deps, upload, job.data.eTag);
  try {
    // Re-entry (scanning -> scanning) stamps the attempt; a lost race leaves the winner's state.
    const started = await deps.repository.transition(uploadId, "scan", "scan");
    if (!started.applied) return started.upload ? ensureNextStage(deps, started.upload, job.data.eTag) : undefined;
    if (job.attemptsMade > 0) await deps.repository.countAttempt(uploadId);

    const head = await deps.store.head(upload.objectKey);
    if (!head) throw new Error(`object ${upload.objectKey} is missing`);
    if (job.data.eTag && head.eTag && head.eTag !== job.data.eTag) {
      await recordVerdict(deps, uploadId, "scan", objectReplaced(), {});
      return;
    }
    const text = isTextType(upload.declaredType) ? new TextContentCheck(upload.declaredType) : null;
    const body = await deps.store.read(upload.objectKey);
    const observed = text ? pipeline(body, textObserver(text), () => undefined) : body;
    const report = await deps.scanner.scan(observed);
    const version = await deps.scannerVersion.get();

    const after = await deps.store.head(upload.objectKey);
    const replaced = !after || (head.eTag !== null && after.eTag !== head.eTag);
    const textProblem = text && report.bytes === head.size ? text.finish() : null;
    const verdict = finalVerdict(
      scanVerdict(report, { size: head.size, declaredSha256: upload.declaredSha256 }),
      replaced ? objectReplaced() : null,
      textProblem ? quarantine("invalid_content", textProblem) : null,
    );
    await recordVerdict(deps, uploadId, "scan", verdict, { sha256: report.sha256, scannerVersion: version }, head.eTag);
  } catch (err) {
    if (err instanceof UnrecoverableError || !isLastAttempt(job)) throw err;
    deps.logger.error({ uploadId, err }, "scan kept failing until retries ran out; quarantining (fail closed)");
    await recordVerdict(deps, uploadId, "scan", quarantine("scan_error", `scan failed on every attempt: ${(err as Error).message}`), {});
  }
}

function objectReplaced() {
  return quarantine("checksum_mismatch", "the pending object was replaced while it was being checked: the stored bytes are not the bytes that were checked");
}

/** Passes chunks through unchanged, feeding the text check on the way. */
function textObserver(check: TextContentCheck): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      check.push(chunk);
      done(null, chunk);
    },
  });
}

/**
 * clamd's engine and signature database version, recorded with every verdict. Asked at
 * most once per `ttlMs`: freshclam reloads databases while clamd runs, so it can change.
 */
export class ScannerVersionCache {
  private readonly scanner: Pick<Scanner, "version">;
  private readonly ttlMs: number;
  private cached: { value: string; at: number } | null = null;
  constructor(scanner: Pick<Scanner, "version">, ttlMs = 60_000) {
    this.scanner = scanner;
    this.ttlMs = ttlMs;
  }
  async get(): Promise<string> {
    if (this.cached && Date.now() - this.cached.at < this.ttlMs) return this.cached.value;
    const v = await this.scanner.version();
    this.cached = { value: v.raw, at: Date.now() };
    return v.raw;
  }
}
