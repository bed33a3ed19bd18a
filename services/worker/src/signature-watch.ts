import { resumeHeld, SignatureWatch, type HeldUploads, type PipelineMetrics, type Scanner, type StageQueues } from "@intake/pipeline";
import type { Config, Logger } from "@intake/runtime";
import { hasTestSignaturesOnly, ruleSetOfSignature, SIGNATURE_SET_PROBE, testDatabaseDate } from "@intake/scanner";

/**
 * A scanning worker's watch over clamd's signatures (@intake/pipeline signature-watch.ts):
 * read every SIGNATURE_CHECK_SECONDS, a change logged and counted, and held uploads resumed
 * as soon as the signatures are fresh enough again (after a freshclam update, or
 * `npm run signatures -- reload`).
 */
export interface RunningSignatureWatch {
  watch: SignatureWatch;
  /** One reading and resume now (what the timer does). */
  check(): Promise<void>;
  stop(): void;
}

export function startSignatureWatch(
  config: Config,
  o: { scanner: Pick<Scanner, "version" | "scan">; repository: HeldUploads; queues: Pick<StageQueues, "requeue">; logger: Logger; metrics: Pick<PipelineMetrics, "signaturesChanged">; onVersionChange?: (version: string) => void },
): RunningSignatureWatch {
  const { signatures } = config;
  const watch = new SignatureWatch({
    scanner: o.scanner,
    policy: { maxAgeHours: signatures.maxAgeHours, holdWhenStale: signatures.holdWhenStale, acceptTestSignatures: signatures.acceptTestSignatures },
    testSignaturesMarker: () => hasTestSignaturesOnly(config.dataDir),
    testDatabaseDate: () => testDatabaseDate(config.dataDir),
    ruleSetProbe: { bytes: SIGNATURE_SET_PROBE, digestOf: ruleSetOfSignature },
    logger: o.logger,
    onChange: (_from, to) => {
      o.metrics.signaturesChanged?.();
      o.onVersionChange?.(to.version);
    },
    ttlMs: signatures.checkSeconds * 1000,
  });
  const resumeDeps = { repository: o.repository, queues: o.queues, logger: o.logger, onePassMaxBytes: config.worker.onePassMaxBytes, signatures: watch };
  let running: Promise<void> | null = null;
  const check = () => {
    running ??= watch
      .refresh()
      .then(() => resumeHeld(resumeDeps))
      .then(() => undefined)
      // clamd away: scans fail and retry meanwhile; the next tick reads again.
      .catch((err: unknown) => o.logger.warn({ err: { message: (err as Error).message } }, "could not read clamd's signatures or resume held uploads"))
      .finally(() => (running = null));
    return running;
  };
  const timer = setInterval(() => void check(), signatures.checkSeconds * 1000);
  timer.unref();
  return { watch, check, stop: () => clearInterval(timer) };
}
