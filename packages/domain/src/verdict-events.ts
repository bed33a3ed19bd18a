import type { Upload } from "./upload.ts";
import type { UploadStatus } from "./upload-state.ts";
import { uploadView, type UploadView } from "./upload-view.ts";

/**
 * The events a tenant's webhook endpoints can subscribe to: an upload reached a verdict
 * (verified, quarantined) or never arrived (expired). Each is sent once per subscribed
 * endpoint, with the upload as the tenant API shows it.
 */
export const VERDICT_EVENT_TYPES = ["upload.verified", "upload.quarantined", "upload.expired"] as const;
export type VerdictEventType = (typeof VERDICT_EVENT_TYPES)[number];

/** The payload's format version: a receiver that reads `version` can tell a later shape apart. */
export const VERDICT_EVENT_VERSION = 1;

export interface VerdictEvent {
  type: VerdictEventType;
  version: typeof VERDICT_EVENT_VERSION;
  /** When the state change happened (ISO-8601 UTC), not when this copy was sent. */
  timestamp: string;
  data: UploadView;
}

const EVENT_OF_STATUS: Partial<Record<UploadStatus, VerdictEventType>> = {
  verified: "upload.verified",
  quarantined: "upload.quarantined",
  expired: "upload.expired",
};

/** The event an upload's new status causes, if any. */
export function verdictEventFor(status: UploadStatus): VerdictEventType | null {
  return EVENT_OF_STATUS[status] ?? null;
}

export function isVerdictEventType(value: unknown): value is VerdictEventType {
  return typeof value === "string" && (VERDICT_EVENT_TYPES as readonly string[]).includes(value);
}

/** The event for an upload that has just changed to a status that causes one. */
export function verdictEvent(upload: Upload, at: Date): VerdictEvent | null {
  const type = verdictEventFor(upload.status);
  return type ? { type, version: VERDICT_EVENT_VERSION, timestamp: at.toISOString(), data: uploadView(upload) } : null;
}
