import type { Upload } from "@intake/domain";
import { stageFor } from "./decisions.ts";
import type { SignatureGate, StageDeps, UploadStore } from "./deps.ts";
import type { StageQueues } from "./stage-queues.ts";

/**
 * Held uploads (a clean result made with signatures too old, or test-only where those are
 * not accepted: upload-state.ts `held`) proceed by themselves once the signatures are fresh
 * enough: each is resumed into `inspecting` and checked again from the start with the new
 * signatures (its old clean result proved nothing they would not), then goes on as any
 * upload does, to verified or to quarantine. Run by scanning workers after every reading of
 * clamd's signatures (worker timer, version change); a resume is a guarded transition, so
 * several workers doing it at once resume each upload once.
 */
export interface HeldUploads extends UploadStore {
  findHeld(limit?: number): Promise<Upload[]>;
}

export type ResumeDeps = Pick<StageDeps, "logger" | "onePassMaxBytes"> & { repository: HeldUploads; signatures: SignatureGate; queues: Pick<StageQueues, "requeue"> };

/** Resumes up to `limit` held uploads when clean results may be issued again; how many it resumed. */
export async function resumeHeld(deps: ResumeDeps, limit = 500): Promise<number> {
  if ((await deps.signatures.holdReason()) !== null) return 0;
  let resumed = 0;
  for (const held of await deps.repository.findHeld(limit)) {
    const r = await deps.repository.transition(held.id, "resume", "scan", { reasonDetail: null });
    // Another worker resumed it first: that one queues it (and a lost enqueue is the reaper's).
    if (!r.applied) continue;
    // requeue, not enqueue: the job that held it keeps its id (a completed job is kept for a
    // while, and adding its id again would be a silent no-op). "live" means a job of that
    // stage still runs and will see the new status; a lost one is the reaper's (inspecting
    // is job-driven again).
    const stage = stageFor(r.upload, deps.onePassMaxBytes);
    if (stage) await deps.queues.requeue(stage, r.upload.id);
    resumed++;
  }
  if (resumed > 0) deps.logger.info({ resumed }, "held uploads resumed: fresh signatures loaded, checking them again");
  return resumed;
}
