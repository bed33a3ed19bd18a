import { randomBytes } from "node:crypto";
import type { Knex } from "knex";
import {
  assertSecondAdmin,
  ConflictError,
  ForbiddenError,
  needsOverride,
  NotFoundError,
  parseReleaseDetail,
  type OverrideStatus,
  type QuarantineOverride,
  type ReleaseDetail,
  type ReleaseRequest,
  type Upload,
  type UploadStatus,
} from "@intake/domain";
import { AuditLog } from "./audit-log.ts";
import { atomically, Statement } from "./connection.ts";
import { isUniqueViolation, type TransitionResult, type UploadRepository } from "./upload-repository.ts";

/**
 * The writes behind the compliance reviewers' actions (the rules are in
 * @intake/domain quarantine-review.ts): release, the two-admin override, retention, delete.
 * Each is one atomic unit with its audit link, which names the person (actorId) and their
 * justification, so an action and its record commit together or not at all. A release is a
 * state-machine transition (quarantined -> rechecking) like any other, through
 * UploadRepository.transition; the rest change no status.
 */
export interface Reviewer {
  /** The admin user's id. */
  id: string;
  justification: string;
}

/** What the review needs of an upload's row beyond Upload. */
export interface ReviewState {
  retentionUntil: Date | null;
  purgedAt: Date | null;
  releaseDetail: ReleaseDetail | null;
}

const OPEN: OverrideStatus = "requested";

export class QuarantineReview {
  private readonly db: Knex;
  private readonly uploads: UploadRepository;
  private readonly audit: AuditLog;
  constructor(db: Knex, uploads: UploadRepository) {
    this.db = db;
    this.uploads = uploads;
    this.audit = new AuditLog(db);
  }

  async state(uploadId: string): Promise<ReviewState | null> {
    const row = await this.db("uploads").where({ id: uploadId }).first("retention_until", "purged_at", "release_detail");
    if (!row) return null;
    return { retentionUntil: date(row.retention_until), purgedAt: date(row.purged_at), releaseDetail: parseReleaseDetail(row.release_detail) };
  }

  /** The release a recheck carries out (null: none recorded). */
  async releaseDetail(uploadId: string): Promise<ReleaseDetail | null> {
    return (await this.state(uploadId))?.releaseDetail ?? null;
  }

  /**
   * quarantined -> rechecking, with the request on the row (release_detail) for the recheck
   * to read, and the person on the audit link. Not applied: the upload is no longer
   * quarantined (another reviewer's release, a delete).
   */
  async release(upload: Pick<Upload, "id">, by: Reviewer, now = new Date()): Promise<TransitionResult> {
    const request: ReleaseRequest = { kind: "release", by: by.id, at: now.toISOString(), justification: by.justification };
    return this.uploads.transition(upload.id, "release", "admin", { releaseDetail: JSON.stringify({ request } satisfies ReleaseDetail) }, now, {
      person: { actorId: by.id, justification: by.justification, detail: { release: "release" } },
      // Only while the bytes are kept: a purge in between would leave nothing to recheck.
      alongside: async (tx, released) => {
        // Never one person for a signature finding, whichever route asked.
        if (needsOverride(released)) throw new ForbiddenError("override_required", "this upload was caught by a malware signature: it is released only through an override approved by a second admin");
        const kept = await tx.first<{ purged_at: unknown }>(new Statement("select purged_at from uploads where id = ?", [upload.id]));
        if (kept?.purged_at !== null && kept?.purged_at !== undefined) throw new ConflictError("upload_purged", "the quarantined bytes were deleted: nothing left to release");
      },
    });
  }

  async overrides(uploadId: string): Promise<QuarantineOverride[]> {
    const rows = await this.db("quarantine_overrides").where({ upload_id: uploadId }).orderBy("requested_at");
    return rows.map(toOverride);
  }

  async override(id: string): Promise<QuarantineOverride | null> {
    const row = await this.db("quarantine_overrides").where({ id }).first();
    return row ? toOverride(row) : null;
  }

  /**
   * An admin asks for the release of an upload caught by a signature; a second admin must
   * approve it. The request names the signature it accepts (the upload's), and only that
   * one. One open request per upload (a unique partial index decides between racers).
   */
  async requestOverride(upload: Pick<Upload, "id" | "tenantId" | "status" | "signature" | "reason" | "finalKey">, by: Reviewer, now = new Date()): Promise<QuarantineOverride> {
    const id = `ovr_${randomBytes(12).toString("hex")}`;
    const signature = upload.signature ?? `(${upload.reason ?? "unknown"} without a signature name)`;
    try {
      await atomically(this.db, async (tx) => {
        // The status is checked in the unit: a release committed meanwhile wins.
        const current = await tx.first<{ status: UploadStatus }>(new Statement("select status from uploads where id = ?", [upload.id]));
        if (current?.status !== "quarantined") throw new ConflictError("upload_not_quarantined", `only a quarantined upload can be released; this one is ${current?.status ?? "gone"}`);
        await tx.run(this.db("quarantine_overrides").insert({ id, upload_id: upload.id, status: OPEN, signature, requested_by: by.id, request_justification: by.justification, requested_at: now.getTime() }));
        await this.audit.append(tx, { actor: "admin", actorId: by.id, action: "quarantine.override_requested", uploadId: upload.id, tenantId: upload.tenantId, objectKey: upload.finalKey, justification: by.justification, stateBefore: "quarantined", stateAfter: "quarantined", detail: { overrideId: id, signature, requestedBy: by.id } }, now);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("override_already_requested", "an override is already requested for this upload: approve or reject that one");
      throw err;
    }
    return (await this.override(id))!;
  }

  /**
   * A second admin approves: the override is approved and the upload released into the
   * recheck in one unit, and the recheck accepts the override's signature only. Both admins
   * are on the record: the request's audit link and requested_by name the first, the
   * release's link (actorId) and decided_by the second.
   */
  async approveOverride(overrideId: string, upload: Pick<Upload, "id">, by: Reviewer, now = new Date()): Promise<TransitionResult> {
    const o = await this.openOverride(overrideId, upload.id);
    // Who created whose account never changes once written: read outside the unit.
    assertSecondAdmin({ id: o.requestedBy, createdBy: await this.creatorOf(o.requestedBy) }, { id: by.id, createdBy: await this.creatorOf(by.id) });
    const request: ReleaseRequest = {
      kind: "override",
      by: by.id,
      at: now.toISOString(),
      justification: by.justification,
      override: { id: o.id, signature: o.signature ?? "", requestedBy: o.requestedBy, approvedBy: by.id },
    };
    const result = await this.uploads.transition(upload.id, "release", "admin", { releaseDetail: JSON.stringify({ request } satisfies ReleaseDetail) }, now, {
      person: { actorId: by.id, justification: by.justification, detail: { release: "override", overrideId: o.id, signature: o.signature, requestedBy: o.requestedBy, requestJustification: o.requestJustification, approvedBy: by.id } },
      alongside: async (tx) => {
        // Still open, still someone else's: checked again under the unit's lock, so two
        // approvals racing (or the requester in a second session) cannot both apply.
        const decided = await tx.run(
          new Statement("update quarantine_overrides set status = ?, decided_by = ?, decision_justification = ?, decided_at = ? where id = ? and upload_id = ? and status = ? and requested_by <> ?", ["approved", by.id, by.justification, now.getTime(), o.id, upload.id, OPEN, by.id]),
        );
        if (decided !== 1) throw new ConflictError("override_not_open", "this override is no longer open (approved, rejected or withdrawn meanwhile)");
      },
    });
    if (!result.applied) throw new ConflictError("upload_not_quarantined", `only a quarantined upload can be released; this one is ${result.upload?.status ?? "gone"}`);
    return result;
  }

  private async creatorOf(adminId: string): Promise<string | null> {
    const row = await this.db("admin_users").where({ id: adminId }).first("created_by");
    return (row?.created_by as string | null | undefined) ?? null;
  }

  /** A second admin rejects the request, or its requester withdraws it. The upload stays quarantined. */
  async rejectOverride(overrideId: string, upload: Pick<Upload, "id" | "tenantId" | "finalKey">, by: Reviewer, now = new Date()): Promise<QuarantineOverride> {
    const o = await this.openOverride(overrideId, upload.id);
    const status: OverrideStatus = o.requestedBy === by.id ? "withdrawn" : "rejected";
    await atomically(this.db, async (tx) => {
      const decided = await tx.run(
        new Statement("update quarantine_overrides set status = ?, decided_by = ?, decision_justification = ?, decided_at = ? where id = ? and upload_id = ? and status = ?", [status, by.id, by.justification, now.getTime(), o.id, upload.id, OPEN]),
      );
      if (decided !== 1) throw new ConflictError("override_not_open", "this override is no longer open (approved, rejected or withdrawn meanwhile)");
      await this.audit.append(tx, { actor: "admin", actorId: by.id, action: `quarantine.override_${status}`, uploadId: upload.id, tenantId: upload.tenantId, objectKey: upload.finalKey, justification: by.justification, stateBefore: "quarantined", stateAfter: "quarantined", detail: { overrideId: o.id, signature: o.signature, requestedBy: o.requestedBy, decidedBy: by.id } }, now);
    });
    return (await this.override(o.id))!;
  }

  /**
   * Keeps the quarantined bytes until `until` (the reaper's purge respects it). Only ever
   * later than what is in force: the caller checked it against the date the reaper would
   * use; the statement checks it against the row again (a concurrent, later extension wins).
   */
  async extendRetention(upload: Pick<Upload, "id" | "tenantId" | "finalKey">, until: Date, inForce: Date, by: Reviewer, now = new Date()): Promise<void> {
    await atomically(this.db, async (tx) => {
      const changed = await tx.run(
        new Statement("update uploads set retention_until = ?, updated_at = ? where id = ? and status = ? and purged_at is null and (retention_until is null or retention_until < ?)", [until.getTime(), now.getTime(), upload.id, "quarantined", until.getTime()]),
      );
      if (changed !== 1) throw new ConflictError("retention_not_extended", "the upload is no longer quarantined, its bytes are gone, or it is already kept at least that long");
      await this.audit.append(tx, { actor: "admin", actorId: by.id, action: "quarantine.retention_extended", uploadId: upload.id, tenantId: upload.tenantId, objectKey: upload.finalKey, justification: by.justification, stateBefore: "quarantined", stateAfter: "quarantined", detail: { from: inForce.toISOString(), to: until.toISOString() } }, now);
    });
  }

  /**
   * Records that a reviewer deleted the quarantined bytes (the caller deleted the object
   * first, as the reaper's purge does). False when they were already gone: the delete is
   * idempotent and the audit trail holds it once.
   */
  async markDeleted(upload: Pick<Upload, "id" | "tenantId" | "finalKey" | "reason">, by: Reviewer, now = new Date()): Promise<boolean> {
    return atomically(this.db, async (tx) => {
      const marked = await tx.run(new Statement("update uploads set purged_at = ?, updated_at = ? where id = ? and status = ? and purged_at is null", [now.getTime(), now.getTime(), upload.id, "quarantined"]));
      if (marked !== 1) return false;
      await this.audit.append(tx, { actor: "admin", actorId: by.id, action: "quarantine.deleted", uploadId: upload.id, tenantId: upload.tenantId, objectKey: upload.finalKey, justification: by.justification, stateBefore: "quarantined", stateAfter: "quarantined", detail: { reason: upload.reason, finalKey: upload.finalKey } }, now);
      return true;
    });
  }

  private async openOverride(overrideId: string, uploadId: string): Promise<QuarantineOverride> {
    const o = await this.override(overrideId);
    if (!o || o.uploadId !== uploadId) throw new NotFoundError("override", overrideId);
    if (o.status !== OPEN) throw new ConflictError("override_not_open", `this override is already ${o.status}`, { status: o.status });
    return o;
  }
}

const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(Number(v)));

function toOverride(r: Record<string, any>): QuarantineOverride {
  return {
    id: r.id,
    uploadId: r.upload_id,
    status: r.status,
    signature: r.signature ?? null,
    requestedBy: r.requested_by,
    requestJustification: r.request_justification,
    requestedAt: new Date(Number(r.requested_at)),
    decidedBy: r.decided_by ?? null,
    decisionJustification: r.decision_justification ?? null,
    decidedAt: date(r.decided_at),
  };
}
