import type { Actor } from "@intake/db";
import type { Upload, Verdict } from "@intake/domain";
import type { TransitionResult, UploadFindings } from "@intake/db";
import { stageFor } from "./decisions.ts";
import type { StageDeps } from "./deps.ts";
import type { StageJobData } from "./stage-queues.ts";
import { holdExplanation } from "./signature-watch.ts";

/**
 * How an upload moves from one stage to the next. A stage changes the status in the
 * database first (the guarded transition) and enqueues the next stage second; if it dies
 * in between, a retry of the same job finds the upload already further on and only has to
 * make sure the next stage is queued (deterministic job ids make that a no-op when it is).
 */

/** The slice of a BullMQ job the processors read; tests pass plain objects. */
export interface StageJob {
  data: StageJobData;
  attemptsMade: number;
  opts: { attempts?: number };
}

/**
 * A job that can never succeed (its upload does not exist). The stage workers translate it
 * into the queue's own "do not retry" signal, so the processors know nothing of BullMQ.
 */
export class UploadGoneError extends Error {
  constructor(uploadId: string) {
    super(`upload ${uploadId} does not exist`);
    this.name = "UploadGoneError";
  }
}

/** True on the job's last attempt: a failure now would leave nobody to retry it. */
export function isLastAttempt(job: StageJob): boolean {
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/** Makes sure the stage that owns the upload's current status is queued. */
export async function ensureNextStage(deps: Pick<StageDeps, "queues" | "onePassMaxBytes">, upload: Upload): Promise<void> {
  const stage = stageFor(upload, deps.onePassMaxBytes);
  if (stage) await deps.queues.enqueue(stage, upload.id);
}

/**
 * Writes the verdict (inspecting|scanning -> deciding) and queues finalize. The verdict is
 * fixed here, before any copy, so a retried copy can never change it. When another worker
 * got there first the transition does not apply and that worker's verdict stands.
 */
export async function recordVerdict(
  deps: StageDeps,
  uploadId: string,
  actor: Actor,
  verdict: Verdict,
  findings: UploadFindings,
): Promise<Upload | null> {
  const result = await decideVerdict(deps, uploadId, actor, verdict, findings);
  if (result.upload) await ensureNextStage(deps, result.upload);
  return result.upload;
}

/**
 * Writes the verdict (inspecting|scanning -> deciding) and nothing more: for a stage that
 * goes on to finalize the upload itself when its verdict is the one written (one-pass.ts,
 * scan.ts), and queues finalize otherwise. A clean result the signatures cannot back is held
 * instead (-> held): the caller finalizes only an upload the result left `deciding`.
 */
export async function decideVerdict(deps: Pick<StageDeps, "repository" | "logger" | "signatures" | "metrics">, uploadId: string, actor: Actor, verdict: Verdict, findings: UploadFindings): Promise<TransitionResult> {
  // A clean result is only as good as the signatures it was made with: too old (or test
  // signatures where those are not accepted) and it is held, not issued. The row keeps what
  // was found (sha256, the signature version) but no verdict; a finding is never held.
  const hold = verdict.outcome === "clean" && deps.signatures ? await deps.signatures.holdReason() : null;
  if (hold) {
    const { facts } = await deps.signatures!.current();
    const result = await deps.repository.transition(uploadId, "hold", actor, { ...findings, reasonDetail: holdExplanation(hold, facts) });
    if (result.applied) {
      deps.logger.warn({ uploadId, hold, signatures: facts }, "clean result held: the signatures are not fresh enough to issue it");
      deps.metrics?.verdictHeld?.(hold);
    }
    return result;
  }
  const result = await deps.repository.transition(uploadId, "decide", actor, { ...findings, ...verdictFindings(verdict) });
  if (result.applied) {
    deps.logger.info({ uploadId, verdict: result.upload.verdict, reason: result.upload.reason, detail: result.upload.reasonDetail }, "verdict recorded");
  }
  return result;
}

/**
 * Keeps the row's updatedAt fresh while `work` runs. The reaper re-queues a row untouched
 * for STUCK_AFTER_SECONDS whose job is gone; BullMQ's job state says "alive" only while
 * Redis still holds the job, and a Redis flushed or restarted mid-scan takes it away while
 * the scan goes on (a second scan of the same object would start). The row outlives that.
 */
export async function withHeartbeat<T>(deps: Pick<StageDeps, "repository" | "logger"> & { heartbeatMs: number }, uploadId: string, work: () => Promise<T>): Promise<T> {
  const beat = setInterval(() => {
    deps.repository.touch(uploadId).catch((err: unknown) => deps.logger.warn({ uploadId, err }, "scan heartbeat not written; the reaper may take the scan for a lost one"));
  }, deps.heartbeatMs);
  try {
    return await work();
  } finally {
    clearInterval(beat);
  }
}

/** A verdict as the row's columns. */
export function verdictFindings(verdict: Verdict): UploadFindings {
  return verdict.outcome === "clean"
    ? { verdict: "clean", reason: null, reasonDetail: null, signature: null }
    : { verdict: "quarantine", reason: verdict.reason, reasonDetail: verdict.detail, signature: verdict.signature ?? null };
}
