/**
 * The upload state machine: the one place that says which status may follow which.
 * Every status change in the system goes through `nextStatus`, and the database applies it
 * as a conditional update (`WHERE status IN (from)`), so two workers handling the same
 * upload (BullMQ is at-least-once, S3 events are at-least-once) can never both win.
 *
 *   pending ──arrived──▶ uploaded ──inspect──▶ inspecting ──scan──▶ scanning
 *      │                                           │                  │
 *      ├─expire─▶ expired                          └──────decide──────┴─▶ deciding
 *      └─abort──▶ aborted                                                  │
 *                                              verified ◀─promote─┤├─quarantine─▶ quarantined
 *
 * `deciding` means: the verdict is written (clean or a quarantine reason) and the object is
 * being copied to its final prefix. The verdict is fixed before the copy so that a retry of
 * the copy can never change it.
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
] as const;
export type UploadStatus = (typeof UPLOAD_STATUSES)[number];

export type UploadEvent =
  | "arrived" // storage (S3 event) or the client (complete) says the object is there
  | "inspect" // the inspect stage starts (re-entry allowed: retries, stalled jobs)
  | "scan" // inspection passed; the malware scan starts (re-entry allowed)
  | "decide" // a verdict is written; the final copy is next
  | "promote" // copied to verified/
  | "quarantine" // copied to quarantine/
  | "expire" // the reaper gave up on an upload whose object never arrived
  | "abort"; // the client cancelled

const TRANSITIONS: Record<UploadEvent, { from: readonly UploadStatus[]; to: UploadStatus }> = {
  arrived: { from: ["pending"], to: "uploaded" },
  inspect: { from: ["uploaded", "inspecting"], to: "inspecting" },
  scan: { from: ["inspecting", "scanning"], to: "scanning" },
  decide: { from: ["inspecting", "scanning"], to: "deciding" },
  promote: { from: ["deciding"], to: "verified" },
  quarantine: { from: ["deciding"], to: "quarantined" },
  expire: { from: ["pending"], to: "expired" },
  abort: { from: ["pending"], to: "aborted" },
};

export function transitionFor(event: UploadEvent): { from: readonly UploadStatus[]; to: UploadStatus } {
  return TRANSITIONS[event];
}

/** The status after `event`, or null when the event is not allowed from `current`. */
export function nextStatus(current: UploadStatus, event: UploadEvent): UploadStatus | null {
  const t = TRANSITIONS[event];
  return t.from.includes(current) ? t.to : null;
}

/** Every status `from` can lead to through the table, `from` included. */
export function reachableFrom(from: UploadStatus): readonly UploadStatus[] {
  const seen = new Set<UploadStatus>([from]);
  for (const status of seen) {
    for (const t of Object.values(TRANSITIONS)) if (t.from.includes(status)) seen.add(t.to);
  }
  return UPLOAD_STATUSES.filter((s) => seen.has(s));
}

/** Statuses no event leaves. */
export const TERMINAL_STATUSES: readonly UploadStatus[] = UPLOAD_STATUSES.filter((s) => reachableFrom(s).length === 1);
/**
 * Statuses in which the pipeline owns the upload (its object arrived, no verdict is final
 * yet); the reaper re-enqueues ones stuck here.
 */
export const PROCESSING_STATUSES: readonly UploadStatus[] = reachableFrom(TRANSITIONS.arrived.to).filter((s) => !isTerminal(s));
/** Statuses of an upload whose object has arrived: `arrived` and everything after it. */
export const ARRIVED_STATUSES: readonly UploadStatus[] = reachableFrom(TRANSITIONS.arrived.to);

export function isTerminal(status: UploadStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}
