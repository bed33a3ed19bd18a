/**
 * The upload state machine: the one place that says which status may follow which.
 * Every status change in the system goes through `nextStatus`, and the database applies it
 * as a conditional update (`WHERE status IN (from)`), so two workers handling the same
 * upload (BullMQ is at-least-once, S3 events are at-least-once) can never both win.
 *
 *   pending ──arrived──▶ uploaded ──inspect──▶ inspecting ──scan──▶ scanning
 *      │                                         │   ▲                 │
 *      │                                         │   └──resume── held ◀─┤ hold (from inspecting too:
 *      │                                         │                      │  a one-pass check)
 *      ├─expire─▶ expired                        └──────decide─────────┴─▶ deciding
 *      └─abort──▶ aborted                                                  │
 *                                              verified ◀─promote─┤├─quarantine─▶ quarantined
 *                                                 ▲                                  │    ▲
 *                                                 │                           release│    │quarantine
 *                                                 │                                  ▼    │
 *                                                 └─────────────promote─────────  rechecking
 *
 * `deciding` means: the verdict is written (clean or a quarantine reason) and the object is
 * being copied to its final prefix. The verdict is fixed before the copy so that a retry of
 * the copy can never change it.
 *
 * `held` means: every check passed, but the signatures the scan used were too old (or test
 * signatures only where those are not accepted), so the clean verdict is not issued. The
 * upload waits, its object in place; when fresh signatures load, the worker `resume`s it
 * to `inspecting` and it is checked again from the start with them (the old clean result is
 * not trusted). A finding (quarantine) is never held. No job owns a held upload, so the
 * reaper neither re-queues nor expires it; it keeps its place in the tenant's quotas.
 *
 * `release` is the one event a person starts (a compliance reviewer, or two admins for
 * malware): the quarantined object is checked again with today's signatures (`rechecking`,
 * packages/pipeline/src/recheck.ts), which ends `verified` only when every check passes and
 * back in `quarantined` otherwise. For the pipeline `verified` and `quarantined` stay final:
 * the status lists below are computed from the pipeline's events only, so a release neither
 * takes a place in the tenant's quotas again nor gives one back twice. The reaper re-queues
 * a recheck whose job was lost, as it does a stuck stage.
 *
 * `rescan_match` is the rescan's (packages/pipeline/src/rescan.ts): a verified upload whose
 * object today's signatures match after a signature update. It fixes the finding
 * (malware_on_rescan and the signature) and moves the upload to `quarantining` before any
 * object moves, so no download is signed from then on; the object is copied to quarantine/,
 * the verified/ copy deleted, and `rescan_quarantine` ends it `quarantined` last (the audit
 * row and the upload.quarantined webhook commit with it). A retry of a move that died
 * halfway finds `quarantining` and finishes the same steps. `rescan_pass` records the newer
 * signature version on a verified upload that is still clean (no status change, no audit
 * row, no webhook). The rescan's events are outside the pipeline's, as a release is:
 * `verified` stays final for the pipeline and the quota lists, so a rescan neither takes a
 * place in the tenant's quotas nor gives one back (the upload gave it back when verified).
 */
export const UPLOAD_STATUSES = [
  "pending",
  "uploaded",
  "inspecting",
  "scanning",
  "deciding",
  "verified",
  "quarantined",
  "expired",
  "aborted",
  "rechecking", // a person released a quarantined upload: its object is being checked again
  "held", // checks passed with stale (or test-only) signatures: waits for fresh ones
  "quarantining", // a verified upload matched on rescan: its object is moving from verified/ to quarantine/
] as const;
export type UploadStatus = (typeof UPLOAD_STATUSES)[number];

export type UploadEvent =
  | "arrived" // storage (S3 event) or the client (complete) says the object is there
  | "inspect" // the inspect stage starts (re-entry allowed: retries, stalled jobs)
  | "scan" // inspection passed; the malware scan starts (re-entry allowed)
  | "decide" // a verdict is written; the final copy is next
  | "hold" // a clean result is not issued: the signatures are not fresh enough
  | "resume" // fresh signatures loaded: a held upload is checked again from the start
  | "promote" // copied to verified/
  | "quarantine" // copied to quarantine/
  | "expire" // the reaper gave up on an upload whose object never arrived
  | "abort" // the client cancelled
  | "release" // a reviewer released a quarantined upload: recheck it (review, not pipeline)
  | "rescan_match" // a rescan with newer signatures matched a verified upload: move it to quarantine
  | "rescan_quarantine" // the rescan's move is done: the object is under quarantine/ only
  | "rescan_pass"; // a rescan with newer signatures found a verified upload still clean

const TRANSITIONS: Record<UploadEvent, { from: readonly UploadStatus[]; to: UploadStatus }> = {
  arrived: { from: ["pending"], to: "uploaded" },
  inspect: { from: ["uploaded", "inspecting"], to: "inspecting" },
  scan: { from: ["inspecting", "scanning"], to: "scanning" },
  decide: { from: ["inspecting", "scanning"], to: "deciding" },
  hold: { from: ["inspecting", "scanning"], to: "held" },
  resume: { from: ["held"], to: "inspecting" },
  // From rechecking too: the recheck of a released upload ends as a verdict does.
  promote: { from: ["deciding", "rechecking"], to: "verified" },
  quarantine: { from: ["deciding", "rechecking"], to: "quarantined" },
  expire: { from: ["pending"], to: "expired" },
  abort: { from: ["pending"], to: "aborted" },
  release: { from: ["quarantined"], to: "rechecking" },
  rescan_match: { from: ["verified"], to: "quarantining" },
  rescan_quarantine: { from: ["quarantining"], to: "quarantined" },
  // Re-entrant: records the signature version on a still-clean verified upload.
  rescan_pass: { from: ["verified"], to: "verified" },
};

/** Events people start (the compliance view), as opposed to the pipeline's own. */
export const REVIEW_EVENTS: readonly UploadEvent[] = ["release"];
/**
 * Events a rescan after a signature update starts on a verified upload. Outside the
 * pipeline's, as a release is: `verified` stays final for the pipeline (and for the quotas).
 * `rescan_quarantine` is the pipeline's: it ends a move the way `quarantine` ends a verdict.
 */
export const RESCAN_EVENTS: readonly UploadEvent[] = ["rescan_match", "rescan_pass"];
/** The pipeline's events: the upload's life from creation to its first verdict. */
export const PIPELINE_EVENTS: readonly UploadEvent[] = (Object.keys(TRANSITIONS) as UploadEvent[]).filter((e) => !REVIEW_EVENTS.includes(e) && !RESCAN_EVENTS.includes(e));
/** Every event in the table. */
export const ALL_EVENTS: readonly UploadEvent[] = Object.keys(TRANSITIONS) as UploadEvent[];

export function transitionFor(event: UploadEvent): { from: readonly UploadStatus[]; to: UploadStatus } {
  return TRANSITIONS[event];
}

/** The status after `event`, or null when the event is not allowed from `current`. */
export function nextStatus(current: UploadStatus, event: UploadEvent): UploadStatus | null {
  const t = TRANSITIONS[event];
  return t.from.includes(current) ? t.to : null;
}

/**
 * Every status `from` can lead to through `events` of the table (the pipeline's by
 * default), `from` included.
 */
export function reachableFrom(from: UploadStatus, events: readonly UploadEvent[] = PIPELINE_EVENTS): readonly UploadStatus[] {
  const seen = new Set<UploadStatus>([from]);
  for (const status of seen) {
    for (const e of events) if (TRANSITIONS[e].from.includes(status)) seen.add(TRANSITIONS[e].to);
  }
  return UPLOAD_STATUSES.filter((s) => seen.has(s));
}

/** Statuses no pipeline event leaves (a person may still release a quarantined upload). */
export const TERMINAL_STATUSES: readonly UploadStatus[] = UPLOAD_STATUSES.filter((s) => reachableFrom(s).length === 1);
/**
 * Statuses that wait for fresh signatures rather than for a job (the worker's signature
 * watch resumes them): not stuck however long they stay, and no stage takes them.
 */
export const SIGNATURE_WAIT_STATUSES: readonly UploadStatus[] = [TRANSITIONS.hold.to];
/**
 * Statuses in which a stage of the pipeline works on the upload (its object arrived, no
 * verdict is final yet, and it does not wait for signatures); the reaper re-enqueues ones
 * stuck here.
 */
export const PROCESSING_STATUSES: readonly UploadStatus[] = reachableFrom(TRANSITIONS.arrived.to).filter((s) => !isTerminal(s) && !SIGNATURE_WAIT_STATUSES.includes(s));
/**
 * Statuses an upload only leaves through a job of ours: the pipeline's processing statuses
 * and a released upload's recheck. The reaper re-queues uploads stuck in any of them.
 */
export const JOB_DRIVEN_STATUSES: readonly UploadStatus[] = [...PROCESSING_STATUSES, TRANSITIONS.release.to];
/** A verified upload matched on rescan, its object on the way to quarantine/: the rescan finishes the move. */
export const RESCAN_MOVING_STATUSES: readonly UploadStatus[] = [TRANSITIONS.rescan_match.to];
/** Statuses of an upload whose object has arrived: `arrived` and everything after it. */
export const ARRIVED_STATUSES: readonly UploadStatus[] = reachableFrom(TRANSITIONS.arrived.to);

export function isTerminal(status: UploadStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/**
 * Statuses that hold a place in the tenant's quotas: from creation until the pipeline's
 * first final status. A released upload (`rechecking`) gave its place back when it was
 * quarantined, so neither the release nor the recheck's verdict counts it again.
 */
export const QUOTA_HOLDING_STATUSES: readonly UploadStatus[] = reachableFrom("pending").filter((s) => !isTerminal(s));

/** Whether a change from `from` to `to` gives the upload's share of the quotas back. */
export function releasesQuota(from: UploadStatus, to: UploadStatus): boolean {
  return QUOTA_HOLDING_STATUSES.includes(from) && !QUOTA_HOLDING_STATUSES.includes(to);
}
