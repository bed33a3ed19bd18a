import { canonicalType, objectKey, type Upload } from "@intake/domain";
import type { UploadFindings } from "@intake/db";

/**
 * What finalize does with an upload, as pure functions of the row and what storage said.
 * The stage (finalize.ts) gathers the facts (HeadObject, the copy's result), asks these
 * functions, and acts on the answer; nothing here talks to storage or the database.
 *
 * The rule they keep: only the bytes that were checked reach verified/. The row names
 * them by the ETag inspect recorded (`checkedETag`), and the scan's sha256 (plus, for a
 * multipart upload, its MD5) describe them. A promoting copy counts only once its result
 * proves it holds those bytes; storage is asked to copy only that version
 * (x-amz-copy-source-if-match), but Ceph RGW 16 ignores that header, so the request alone
 * proves nothing. That copy therefore never goes to verified/ itself: it goes to a staging
 * key of its own (stagingKey), and only a confirmed staging copy is copied on to verified/.
 * A replacement copied there, a worker that dies before it looked at what it copied, or a
 * second finalize run of the same upload (at-least-once jobs) can then leave bytes only
 * under a key nothing serves, never under verified/.
 */

export type FinalizeRow = Pick<Upload, "id" | "tenantId" | "verdict" | "checkedETag" | "sha256" | "scannedMd5">;

/** What a stored object says about itself, as far as these decisions need it. */
export interface StoredObject {
  size: number;
  eTag: string | null;
  /** Hex SHA-256 of the whole object, where storage computed one; null otherwise. */
  sha256?: string | null;
  metadata?: Record<string, string>;
}

export interface FinalizeFacts {
  /** HeadObject of the pending key; null when it is gone. */
  pending: StoredObject | null;
  /**
   * Only asked for when the pending object is gone: what an earlier attempt that copied,
   * deleted the pending object and died before the status change left behind.
   */
  verified?: StoredObject | null;
  quarantined?: StoredObject | null;
}

export type FinalizeDecision =
  /** Copy the pending object to a staging key, confirm that copy (promotionOutcome), then copy it on to `target` (verified/). */
  | { kind: "promote"; target: string; size: number }
  /** Delete `discard` if set, copy the pending object to `target` (quarantine/), delete it, record. */
  | { kind: "quarantine"; target: string; size: number; findings: UploadFindings; discard?: string }
  /** The bytes were moved by an earlier attempt: only the status change is left. */
  | { kind: "settle"; event: "promote" | "quarantine"; findings: UploadFindings; discard?: string }
  /** Nothing to move: the pending object vanished before it could be. */
  | { kind: "vanished"; findings: UploadFindings; discard?: string };

/** The stage's one decision for an upload in `deciding`. */
export function decideFinalize(upload: FinalizeRow, facts: FinalizeFacts): FinalizeDecision {
  const verified = objectKey("verified", upload.tenantId, upload.id);
  const quarantine = objectKey("quarantine", upload.tenantId, upload.id);
  const clean = upload.verdict === "clean";
  const pending = facts.pending;
  if (pending) {
    // No discard of verified/: only confirmed copies reach it, and a run promoting the
    // same upload right now may just have put one there (its status change then wins).
    const moveTo = (findings: UploadFindings): FinalizeDecision => ({ kind: "quarantine", target: quarantine, size: pending.size, findings });
    if (!clean) return moveTo({}); // the verdict on the row stands
    if (!upload.checkedETag) return moveTo(overrule("scan_error", "no checked ETag on the upload: nothing binds the object to what was checked"));
    // The client overwrote the object after it was checked: fail closed.
    if (pending.eTag !== upload.checkedETag) return moveTo(overrule("checksum_mismatch", "the pending object was replaced after the scan: the stored bytes are not the bytes that were checked"));
    return { kind: "promote", target: verified, size: pending.size };
  }
  // An earlier attempt deletes the pending object only after a confirmed promoting copy or
  // after the quarantine copy, so a confirmed verified/ copy means "promoted".
  // A stripped copy is not the checked bytes by design: its own metadata names what it was made from.
  const stripped = facts.verified ? strippedCopyFindings(upload, facts.verified) : null;
  const verifiedHolds = facts.verified ? stripped !== null || copyConfirmed(upload, facts.verified) : false;
  const discard = facts.verified && !verifiedHolds ? verified : undefined;
  if (clean && verifiedHolds) return { kind: "settle", event: "promote", findings: { finalKey: verified, ...stripped } };
  if (facts.quarantined) {
    // A clean verdict overruled by that attempt: the quarantined object's metadata says why.
    const findings = clean ? recoveredOverrule(facts.quarantined.metadata ?? {}) : {};
    return { kind: "settle", event: "quarantine", findings: { ...findings, finalKey: quarantine }, ...(discard ? { discard } : {}) };
  }
  const findings = clean ? overrule("scan_error", "the pending object vanished before it could be promoted") : {};
  return { kind: "vanished", findings, ...(discard ? { discard } : {}) };
}

/**
 * Where one finalize run stages its promoting copy: a key per run (`run` is fresh each
 * time), so two overlapping runs never share one, under quarantine/ because its bytes are
 * not confirmed yet (never served, kept by the quarantine lifecycle should a run die
 * before removing it), and named so no client can be handed a URL for it (the API signs
 * pending keys only).
 */
export function stagingKey(upload: Pick<Upload, "tenantId" | "id">, run: string): string {
  return `${objectKey("quarantine", upload.tenantId, upload.id)}.promoting-${run}`;
}

/**
 * The upload a staging key belongs to, or null for any other key: the reaper's sweep
 * (staging-sweep.ts) deletes only what this accepts, so the pattern is exactly stagingKey's
 * with a run from randomUUID (lowercase, 8-4-4-4-12). A final quarantine/{tenant}/{id},
 * or a key that merely contains ".promoting-", is never one.
 */
export function parseStagingKey(key: string): { tenantId: string; uploadId: string } | null {
  const m = /^quarantine\/([A-Za-z0-9_-]{1,64})\/([A-Za-z0-9_-]{1,64})\.promoting-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.exec(key);
  return m ? { tenantId: m[1]!, uploadId: m[2]! } : null;
}

/**
 * After the staging copy: promoted when it is proven to hold the checked bytes (it is then
 * copied on to `target`), otherwise a quarantine that first removes it. `copy` is null
 * when storage refused the copy because the source had changed (it honoured
 * x-amz-copy-source-if-match).
 */
export function promotionOutcome(upload: FinalizeRow, decision: { target: string; staging: string; size: number }, copy: Pick<StoredObject, "eTag" | "sha256"> | null): { kind: "promoted"; findings: UploadFindings } | Extract<FinalizeDecision, { kind: "quarantine" }> {
  if (copy && copyConfirmed(upload, copy)) return { kind: "promoted", findings: { finalKey: decision.target } };
  const findings = copy
    ? overrule("checksum_mismatch", `the object copied for promotion is not the checked version (ETag ${copy.eTag ?? "none"}, checked ${upload.checkedETag}): the pending object was replaced while it was being promoted`)
    : overrule("checksum_mismatch", "the pending object was replaced while it was being promoted: the stored bytes are not the bytes that were checked");
  return { kind: "quarantine", target: objectKey("quarantine", upload.tenantId, upload.id), size: decision.size, findings, ...(copy ? { discard: decision.staging } : {}) };
}

/**
 * Whether a stored copy is the checked version. A SHA-256 settles it (AWS S3 answers
 * CopyObject's x-amz-checksum-algorithm; elsewhere finalize hashes its staging copy, as an
 * ETag is an MD5 and MD5 collisions can be made). Otherwise the ETag: a copy of a
 * single-PUT object keeps its MD5 ETag everywhere, a copy of a multipart object keeps its
 * "-N" ETag on Ceph RGW 16 but gets the whole object's MD5 on fauxqs 2.4.1 (and on AWS S3),
 * which the scan recorded for exactly this (scannedMd5). Anything else is not proven.
 */
export function copyConfirmed(upload: Pick<Upload, "checkedETag" | "sha256" | "scannedMd5">, copy: Pick<StoredObject, "eTag" | "sha256">): boolean {
  if (!upload.checkedETag) return false;
  if (copy.sha256) return upload.sha256 !== null && copy.sha256 === upload.sha256;
  if (!copy.eTag) return false;
  if (copy.eTag === upload.checkedETag) return true;
  return upload.scannedMd5 !== null && copy.eTag === upload.scannedMd5;
}

/**
 * Whether the staging copy must be read back and hashed before it can count: an ETag that
 * matches is only an MD5 that matches (MD5 collisions can be made), so without storage's
 * own SHA-256 the bytes are hashed. A copy whose ETag already differs is refused unread.
 */
export function needsStagedHash(upload: Pick<Upload, "checkedETag" | "sha256" | "scannedMd5">, copy: Pick<StoredObject, "eTag" | "sha256">): boolean {
  return !copy.sha256 && copyConfirmed(upload, copy);
}

/** An ETag that is not a plain MD5 (a multipart upload's "<md5>-<parts>"): the scan must hash the bytes itself. */
export function needsScannedMd5(checkedETag: string): boolean {
  return !/^[0-9a-f]{32}$/i.test(checkedETag);
}

/**
 * The type a verified upload is stored and served as: its declared type, canonical. The
 * checks made the content agree with it (a binary format's magic bytes name the same type;
 * a text format passed its content check), while the sniffer's own name for the bytes can
 * be a looser one (an SVG that starts with <?xml is "application/xml" to file-type).
 */
export function verifiedContentType(upload: Pick<Upload, "declaredType">): string {
  return canonicalType(upload.declaredType) ?? "application/octet-stream";
}

function overrule(reason: (typeof FINALIZE_OVERRULES)[number], detail: string): UploadFindings {
  return { verdict: "quarantine", reason, reasonDetail: detail, signature: null };
}

function recoveredOverrule(metadata: Record<string, string>): UploadFindings {
  const reason = (FINALIZE_OVERRULES as readonly string[]).includes(metadata.reason ?? "") ? (metadata.reason as (typeof FINALIZE_OVERRULES)[number]) : "scan_error";
  return overrule(reason, metadata["reason-detail"] ?? "an earlier finalize attempt quarantined the upload before it could record why");
}

/** The findings finalize itself can make against a clean verdict (stripped-promotion.ts makes the image ones). */
const FINALIZE_OVERRULES = ["checksum_mismatch", "scan_error", "image_undecodable", "image_too_large"] as const;

/**
 * A verified/ copy that an earlier run of a stripping promotion left (stripped-promotion.ts
 * copyStripped): made from this upload's checked bytes (their sha256 in its metadata), with
 * the stripped image's own sha256 and its size, which the record then takes. Only the
 * pipeline writes verified/, and only a confirmed stripped copy is written there with
 * this metadata. null: not such a copy.
 */
export function strippedCopyFindings(upload: Pick<Upload, "sha256">, stored: StoredObject): UploadFindings | null {
  const m = stored.metadata ?? {};
  const served = m["served-sha256"];
  if (m["metadata-stripped"] !== "true" || !served || !/^[0-9a-f]{64}$/.test(served) || !upload.sha256 || m.sha256 !== upload.sha256) return null;
  return { metadataStripped: true, servedSha256: served, servedSize: stored.size };
}
