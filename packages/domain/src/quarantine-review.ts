import { ConflictError, ForbiddenError, InvalidRequestError } from "./errors.ts";
import type { Upload } from "./upload.ts";

/**
 * The compliance reviewers' actions on a quarantined upload, as rules: every action needs a
 * justification in the person's own words; an upload caught by a malware signature is never
 * released by one person (one admin requests an override, a second, different admin
 * approves it); retention only ever grows. The database and the HTTP layer apply these.
 */

/** Long enough for a paragraph, short enough that the audit trail stays readable. */
export const JUSTIFICATION_MAX_CHARS = 2000;

/** The justification as recorded: trimmed, never empty, bounded, with no control characters but newlines. */
export function justificationOf(raw: unknown): string {
  if (typeof raw !== "string" || raw.trim().length === 0) {
    throw new InvalidRequestError("justification_required", "a justification is required: say why, in your own words (it is recorded in the audit trail)");
  }
  const text = raw.trim().replace(/\r\n?/g, "\n");
  if (text.length > JUSTIFICATION_MAX_CHARS) {
    throw new InvalidRequestError("justification_too_long", `the justification is longer than ${JUSTIFICATION_MAX_CHARS} characters`, { length: text.length });
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(text)) throw new InvalidRequestError("justification_invalid", "the justification contains control characters");
  return text;
}

/**
 * Whether releasing the upload needs two admins: it was caught by a malware signature (the
 * reason `malware`, or any verdict that names a signature).
 */
export function needsOverride(upload: Pick<Upload, "reason" | "signature">): boolean {
  return upload.reason === "malware" || (upload.signature !== null && upload.signature !== "");
}

/** The upload may be acted on only while it is quarantined and its bytes are still kept. */
export function assertActionable(upload: Pick<Upload, "id" | "status">, purgedAt: Date | null, action: string): void {
  if (upload.status !== "quarantined") {
    throw new ConflictError("upload_not_quarantined", `only a quarantined upload can be ${action}; this one is ${upload.status}`, { id: upload.id, status: upload.status });
  }
  if (purgedAt) throw new ConflictError("upload_purged", `the quarantined bytes were deleted on ${purgedAt.toISOString()}: nothing left to be ${action}`, { id: upload.id });
}

/** Longest retention a reviewer may set in one go (ten years). */
export const MAX_RETENTION_MS = 10 * 366 * 86_400_000;

/**
 * A new retention date: in the future, later than the one in force (the date the reaper
 * would purge at, or an earlier extension), and within MAX_RETENTION_MS.
 */
export function checkRetention(requested: Date, inForce: Date, now: Date): void {
  if (Number.isNaN(requested.getTime())) throw new InvalidRequestError("invalid_retention", "retention must be a date (YYYY-MM-DD or an ISO-8601 time)");
  if (requested.getTime() <= now.getTime()) throw new InvalidRequestError("retention_in_past", `retention must be in the future (it is ${now.toISOString()})`);
  if (requested.getTime() <= inForce.getTime()) {
    throw new InvalidRequestError("retention_not_later", `retention can only be extended: the upload is kept until ${inForce.toISOString()} already`, { inForce: inForce.toISOString() });
  }
  if (requested.getTime() - now.getTime() > MAX_RETENTION_MS) throw new InvalidRequestError("retention_too_far", "retention can be extended by at most ten years at a time");
}

/** A person may not approve (or reject) an override they requested themselves. */
/**
 * The two people of an override must be two: not the same account, and not two accounts of
 * which one created the other (an admin could otherwise approve their own request through an
 * account they made for it). Accounts made by the command line or by OIDC sign-in have no
 * creator here.
 */
export function assertSecondAdmin(requester: { id: string; createdBy: string | null }, approver: { id: string; createdBy: string | null }): void {
  if (requester.id === approver.id) {
    throw new ForbiddenError("override_needs_second_admin", "an override must be approved by a second, different admin: you requested this one");
  }
  if (requester.createdBy === approver.id || approver.createdBy === requester.id) {
    throw new ForbiddenError("override_not_independent", "an override must be approved by an independent admin: one of you created the other's account");
  }
}

export const OVERRIDE_STATUSES = ["requested", "approved", "rejected", "withdrawn"] as const;
export type OverrideStatus = (typeof OVERRIDE_STATUSES)[number];

export interface QuarantineOverride {
  id: string;
  uploadId: string;
  status: OverrideStatus;
  /** The one finding the override accepts; any other finding keeps the upload quarantined. */
  signature: string | null;
  requestedBy: string;
  requestJustification: string;
  requestedAt: Date;
  decidedBy: string | null;
  decisionJustification: string | null;
  decidedAt: Date | null;
}

/** What a release asked for, kept on the row (uploads.release_detail) for the recheck to read. */
export interface ReleaseRequest {
  kind: "release" | "override";
  /** The person who released it (for an override: the approving admin). */
  by: string;
  at: string;
  justification: string;
  override?: { id: string; signature: string; requestedBy: string; approvedBy: string };
}

/** What the recheck found, next to the request. */
export interface RecheckOutcome {
  at: string;
  status: "verified" | "quarantined";
  reason: string | null;
  detail: string | null;
  /** clamd's VERSION line: engine, signature database version and date. */
  scanner: string | null;
  sha256: string | null;
  /** The sha256 recorded when the upload was quarantined (null: it was never hashed). */
  originalSha256: string | null;
  /** The signature an override accepted, and whether today's signatures still found it. */
  acceptedSignature: string | null;
  acceptedSignatureFound: boolean;
}

export interface ReleaseDetail {
  request: ReleaseRequest;
  outcome?: RecheckOutcome;
}

export function parseReleaseDetail(raw: string | null | undefined): ReleaseDetail | null {
  if (!raw) return null;
  try {
    const value = JSON.parse(raw) as ReleaseDetail;
    return value && typeof value === "object" && value.request ? value : null;
  } catch {
    return null;
  }
}
