import type { Knex } from "knex";
import {
  ConflictError,
  transitionFor,
  JOB_DRIVEN_STATUSES,
  SIGNATURE_WAIT_STATUSES,
  multipartBound,
  releasesQuota,
  termsFrom,
  type PolicyInForce,
  type QuarantineReason,
  type TenantQuotas,
  type Upload,
  type UploadEvent,
  type UploadStatus,
} from "@intake/domain";
import { recordVerdictCacheEntry } from "./verdict-cache.ts";
import { AuditLog, type Actor } from "./audit-log.ts";
import { atomically, Statement, type Atomic } from "./connection.ts";
import { claimQuota, releaseQuota, returnPendingBytes } from "./tenant-usage.ts";
import { returnSessionBytes } from "./upload-sessions.ts";
import { writeVerdictEvents } from "./webhooks.ts";

export interface NewUpload {
  id: string;
  tenantId: string;
  filename: string;
  declaredType: string;
  /** null: the size is learned on arrival, and `sizeLimit` bounds it (@intake/domain upload-size.ts). */
  declaredSize: number | null;
  /** The most bytes the upload may hold; absent: its declared size. */
  sizeLimit?: number;
  declaredSha256?: string;
  declaredMd5?: string;
  metadata: Record<string, string>;
  objectKey: string;
  multipart: { partSize: number; partCount: number; storageUploadId: string } | null;
  urlExpiresAt: Date;
  idempotency?: { key: string; fingerprint: string };
  /** The upload's policy asks for image metadata to be stripped (Upload.stripImageMetadata); absent: no. */
  stripImageMetadata?: boolean;
  /** The tenant's policy in force at create (Upload.policy); absent: none recorded (the deployment's). */
  policy?: PolicyInForce;
}

/** Fields the pipeline records along with a transition. */
export interface UploadFindings {
  storedSize?: number;
  sniffedType?: string | null;
  checkedETag?: string | null;
  sha256?: string;
  scannedMd5?: string | null;
  verdict?: "clean" | "quarantine";
  reason?: QuarantineReason | null;
  reasonDetail?: string | null;
  signature?: string | null;
  scannerVersion?: string | null;
  finalKey?: string;
  /** A stripped copy was promoted (image-stripping.ts): what is served, which is not the upload's bytes. */
  metadataStripped?: boolean;
  servedSha256?: string | null;
  servedSize?: number | null;
  /** JSON: the release being rechecked (who asked, why, any override) and, once done, its outcome. */
  releaseDetail?: string | null;
  /** The scan's context digest (verdict-cache.ts), and the upload whose verdict a cache hit reused. */
  scanContext?: string | null;
  verdictFromCache?: string | null;
}

/** The column each finding is written to. */
const FINDING_COLUMNS: Record<keyof UploadFindings, string> = {
  storedSize: "stored_size",
  sniffedType: "sniffed_type",
  checkedETag: "checked_etag",
  sha256: "sha256",
  scannedMd5: "scanned_md5",
  verdict: "verdict",
  reason: "reason",
  reasonDetail: "reason_detail",
  signature: "signature",
  scannerVersion: "scanner_version",
  finalKey: "final_key",
  releaseDetail: "release_detail",
  metadataStripped: "metadata_stripped",
  servedSha256: "served_sha256",
  servedSize: "served_size",
  scanContext: "scan_context",
  verdictFromCache: "verdict_from_cache",
};

const FINDING_ENTRIES = Object.entries(FINDING_COLUMNS) as [keyof UploadFindings, string][];

export type TransitionResult =
  | { applied: true; upload: Upload }
  | { applied: false; upload: Upload | null }; // null: no such upload

const STATUS_TIMESTAMP: Partial<Record<UploadStatus, string>> = {
  uploaded: "uploaded_at",
  inspecting: "inspected_at",
  scanning: "scanned_at",
  deciding: "decided_at",
  verified: "finished_at",
  quarantined: "finished_at",
  expired: "finished_at",
  aborted: "finished_at",
};

/** The columns a new upload's row sets, in the order of INSERT_UPLOAD's values. */
const UPLOAD_COLUMNS = [
  "id",
  "tenant_id",
  "status",
  "filename",
  "declared_type",
  "declared_size",
  "declared_sha256",
  "declared_md5",
  "metadata",
  "object_key",
  "storage_upload_id",
  "part_size",
  "part_count",
  "url_expires_at",
  "idempotency_key",
  "idempotency_fingerprint",
  "strip_image_metadata",
  "size_limit",
  "reserved_bytes",
  "policy",
  "policy_version",
  "policy_digest",
  "policy_checks_digest",
  "quarantine_retention_days",
  "attempts",
  "created_at",
  "updated_at",
] as const;
const INSERT_UPLOAD = `insert into "uploads" (${UPLOAD_COLUMNS.map((c) => `"${c}"`).join(", ")}) values (${UPLOAD_COLUMNS.map(() => "?").join(", ")})`;

/**
 * Further claims of a new upload's unit of work (an upload session's budget): a refusal
 * throws and undoes the whole unit.
 */
export interface CreateClaims {
  /**
   * For an upload whose size is learned on arrival: the most bytes these claims allow (a
   * session's remaining budget), read in the unit, which narrows its limit; null for no bound.
   */
  remaining?(tx: Atomic): Promise<number | null>;
  /** Claims the bytes the upload reserves: its declared size, or its limit. */
  claim(tx: Atomic, reservedBytes: number): Promise<void>;
}

/** For a transition a person caused (a release): who, why, and what else commits with it. */
export interface TransitionOptions {
  /** Written on the transition's audit row (actor "admin"): the person and their reason. */
  person?: { actorId: string; justification: string; detail?: Record<string, unknown> };
  /** Further writes of the same unit, run once the status changed (before the audit link). */
  alongside?: (tx: Atomic, upload: Upload) => Promise<void>;
}

/**
 * Quarantined uploads whose bytes may be purged: quarantined before the cut-off, not purged
 * yet, and not held longer by a reviewer (retention_until still ahead).
 */
const RETENTION_OVER = "(retention_until is null or retention_until <= ?)";

/**
 * finished_at is when the verdict first became final: a released upload's recheck ending it
 * again (verified or back in quarantine) keeps it, so the quarantine's retention and the
 * review's date filters still count from the original verdict (the release's own time is in
 * release_detail and the audit trail).
 */
const FINISHED_ONCE = "finished_at = coalesce(finished_at, ?)";

export interface ListOptions {
  status?: UploadStatus;
  limit: number;
  cursor?: { createdAt: number; id: string };
}

export class UploadRepository {
  private readonly db: Knex;
  private readonly audit: AuditLog;
  /** The transition's first read: locks the row on PostgreSQL (SQLite's group holds the write lock). */
  private readonly selectForUpdate: string;
  private outboxListener: (() => void) | undefined;
  constructor(db: Knex) {
    this.db = db;
    this.audit = new AuditLog(db);
    const postgres = (db.client as { config?: { client?: string } }).config?.client === "pg";
    this.selectForUpdate = `select status, tenant_id, object_key, declared_size, size_limit, reserved_bytes from uploads where id = ?${postgres ? " for update" : ""}`;
  }

  /**
   * Writes the upload as `pending`. With an idempotency key, a second call with the same
   * key returns the first upload instead (a unique index decides races between two
   * concurrent retries), and a reuse of the key for a different request is a conflict.
   * With `quotas`, the tenant's quotas are claimed in the same unit (see tenant-usage.ts): a
   * create that would break one writes nothing and throws LimitExceededError.
   *
   * An upload whose size is learned on arrival reserves its limit, narrowed in the unit by
   * what `claims` still allow; its arrival settles the reservation (transition, below).
   */
  async create(input: NewUpload, now = new Date(), quotas?: TenantQuotas, claims?: CreateClaims): Promise<{ upload: Upload; created: boolean }> {
    if (input.idempotency) {
      const existing = await this.findByIdempotencyKey(input.tenantId, input.idempotency.key);
      if (existing) return { upload: this.checkFingerprint(existing, input.idempotency.fingerprint), created: false };
    }
    const ts = now.getTime();
    const sizeUnknown = input.declaredSize === null;
    const row: Record<(typeof UPLOAD_COLUMNS)[number], string | number | null> = {
      id: input.id,
      tenant_id: input.tenantId,
      status: "pending" satisfies UploadStatus,
      filename: input.filename,
      declared_type: input.declaredType,
      // 0 is never a declared size: it marks a size-unknown row (migration 0007).
      declared_size: input.declaredSize ?? 0,
      declared_sha256: input.declaredSha256 ?? null,
      declared_md5: input.declaredMd5 ?? null,
      metadata: JSON.stringify(input.metadata),
      object_key: input.objectKey,
      storage_upload_id: input.multipart?.storageUploadId ?? null,
      part_size: input.multipart?.partSize ?? null,
      part_count: input.multipart?.partCount ?? null,
      url_expires_at: input.urlExpiresAt.getTime(),
      idempotency_key: input.idempotency?.key ?? null,
      idempotency_fingerprint: input.idempotency?.fingerprint ?? null,
      // 1/0: a boolean column on PostgreSQL, an integer one on SQLite (which binds no booleans).
      strip_image_metadata: input.stripImageMetadata ? 1 : 0,
      size_limit: sizeUnknown ? limitOf(input) : null,
      reserved_bytes: sizeUnknown ? limitOf(input) : null,
      ...policyColumns(input.policy),
      attempts: 0,
      created_at: ts,
      updated_at: ts,
    };
    try {
      // The row, its audit entry and its share of the quotas commit together or not at all.
      // Statements of fixed text rather than the query builder: compiling the three builders
      // cost about 40 µs of this, the API's hottest path, more than SQLite's work.
      await atomically(this.db, async (tx) => {
        if (sizeUnknown) narrowLimit(row, await claims?.remaining?.(tx));
        const reserved = Number(row.reserved_bytes ?? row.declared_size);
        await tx.run(new Statement(INSERT_UPLOAD, UPLOAD_COLUMNS.map((c) => row[c])));
        if (quotas) await claimQuota(this.db, tx, input.tenantId, reserved, quotas, now);
        // Further claims of the same unit (an upload session's budget): a refusal undoes it all.
        if (claims) await claims.claim(tx, reserved);
        // Last: the audit link holds the chain's head until the commit (audit-log.ts append).
        const size = sizeUnknown ? { sizeLimit: row.size_limit } : { declaredSize: input.declaredSize };
        await this.audit.append(tx, { actor: "api", action: "upload.created", uploadId: input.id, tenantId: input.tenantId, objectKey: input.objectKey, detail: { declaredType: input.declaredType, ...size }, stateAfter: "pending" satisfies UploadStatus }, now);
      });
    } catch (err) {
      if (input.idempotency && isUniqueViolation(err)) {
        const existing = await this.findByIdempotencyKey(input.tenantId, input.idempotency.key);
        if (existing) return { upload: this.checkFingerprint(existing, input.idempotency.fingerprint), created: false };
      }
      throw err;
    }
    // The row as written: reading it back would cost a query on the API's hottest path.
    return { upload: toUpload(row), created: true };
  }

  async get(tenantId: string, id: string): Promise<Upload | null> {
    const row = await this.db("uploads").where({ id, tenant_id: tenantId }).first();
    return row ? toUpload(row) : null;
  }

  async getById(id: string): Promise<Upload | null> {
    const row = await this.db("uploads").where({ id }).first();
    return row ? toUpload(row) : null;
  }

  async getByObjectKey(key: string): Promise<Upload | null> {
    const row = await this.db("uploads").where({ object_key: key }).first();
    return row ? toUpload(row) : null;
  }

  /** Newest first; the cursor is the (created_at, id) of the last row of the previous page. */
  async list(tenantId: string, opts: ListOptions): Promise<{ items: Upload[]; next: { createdAt: number; id: string } | null }> {
    const q = this.db("uploads").where({ tenant_id: tenantId });
    if (opts.status) q.andWhere({ status: opts.status });
    if (opts.cursor) {
      const { createdAt, id } = opts.cursor;
      q.andWhere((w) => w.where("created_at", "<", createdAt).orWhere((w2) => w2.where("created_at", "=", createdAt).andWhere("id", "<", id)));
    }
    const rows = await q.orderBy([{ column: "created_at", order: "desc" }, { column: "id", order: "desc" }]).limit(opts.limit + 1);
    const items = rows.slice(0, opts.limit).map(toUpload);
    const last = items.at(-1);
    return { items, next: rows.length > opts.limit && last ? { createdAt: last.createdAt.getTime(), id: last.id } : null };
  }

  /**
   * Applies a state-machine event as one conditional UPDATE: it succeeds only when the row
   * is still in one of the event's source statuses. At-least-once delivery means the same
   * event may be applied twice concurrently; for an event that changes the status exactly
   * one UPDATE matches and the loser sees applied: false (a re-entrant one, inspect or scan,
   * may apply twice but changes the status once). The audit row, written only for a change
   * of status, is in the same transaction.
   */
  async transition(id: string, event: UploadEvent, actor: Actor, findings: UploadFindings = {}, now = new Date(), opts: TransitionOptions = {}): Promise<TransitionResult> {
    const { from, to } = transitionFor(event);
    const ts = now.getTime();
    const patch: [string, string | number | null][] = [["status", to], ["updated_at", ts]];
    const tsColumn = STATUS_TIMESTAMP[to];
    if (tsColumn) patch.push([tsColumn, ts]);
    for (const [field, column] of FINDING_ENTRIES) {
      const value = findings[field];
      if (value !== undefined) patch.push([column, typeof value === "boolean" ? Number(value) : value]);
    }
    // Statements of fixed text (a few shapes, by which findings are set), not knex
    // builders: every upload makes four transitions, and compiling builders cost the
    // workers more than the database did. The update returns the row it wrote.
    const update = new Statement(
      `update uploads set ${patch.map(([column]) => (column === "finished_at" ? FINISHED_ONCE : `${column} = ?`)).join(", ")} where id = ? and status in (${from.map(() => "?").join(", ")}) returning *`,
      [...patch.map(([, value]) => value), id, ...from],
    );

    // One unit of work (see atomically in connection.ts): on SQLite it runs under the write
    // lock (BEGIN IMMEDIATE), on PostgreSQL the conditional UPDATE decides between racers.
    let outbox = 0;
    const result = await atomically(this.db, async (tx): Promise<TransitionResult> => {
      // FOR UPDATE: on PostgreSQL a racer waits here until the winner commits, then reads the
      // status the UPDATE below will see; unlocked it read the old one and a re-entrant event
      // (inspect, scan) wrote a second audit row naming it. SQLite has no such clause (the
      // group already holds the write lock).
      const before = await tx.first<HeldRow>(new Statement(this.selectForUpdate, [id]));
      if (!before) return { applied: false, upload: null };
      const row = await tx.first(update);
      if (!row) {
        const current = await tx.first(new Statement("select * from uploads where id = ?", [id]));
        return { applied: false, upload: current ? toUpload(current) : null };
      }
      // Leaving the open statuses frees the upload's share of the tenant's quotas, once: a
      // released upload's recheck gave it back already when it was first quarantined.
      if (releasesQuota(before.status, to)) await releaseQuota(tx, before.tenant_id, heldBytes(before));
      // The arrival of an upload whose size was unknown: its reservation is settled to the
      // size recorded now, in this unit, once (pending -> uploaded happens once).
      if (event === "arrived" && before.status !== to && findings.storedSize !== undefined) await this.settle(tx, id, before, findings.storedSize);
      const upload = toUpload(row);
      if (opts.alongside) await opts.alongside(tx, upload);
      // The webhooks this status causes (verified, quarantined, expired) are an outbox:
      // written in this unit, so they exist exactly when the change committed.
      if (before.status !== to) outbox = await writeVerdictEvents(tx, upload, now);
      // A final verdict out of `deciding` may teach the verdict cache (verdict-cache.ts): in
      // this unit, so an entry exists exactly when the verdict it repeats committed.
      if (before.status === "deciding" && before.status !== to) await recordVerdictCacheEntry(tx, upload, now);
      // The audit link last (after any other write of this unit): it holds the chain's head
      // until the commit (audit-log.ts append).
      if (before.status !== to) {
        const person = opts.person ? { actorId: opts.person.actorId, justification: opts.person.justification } : {};
        await this.audit.append(tx, { actor, action: `upload.${to}`, uploadId: id, tenantId: before.tenant_id, objectKey: before.object_key, detail: { from: before.status, event, ...auditFindings(findings), ...opts.person?.detail }, stateBefore: before.status, stateAfter: to, ...person }, now);
      }
      return { applied: true, upload };
    });
    // After the commit: the relay in this process (if any) need not wait for its next poll.
    if (outbox > 0) this.outboxListener?.();
    return result;
  }

  /**
   * Settles a size-unknown upload's reservation to its real size: what the limit held beyond
   * it goes back to the tenant's open bytes and the session's budget. An object over the
   * limit keeps the whole limit reserved (the pipeline refuses it; the quota is freed at its
   * verdict, the session keeps counting it, as it counts an aborted upload).
   */
  private async settle(tx: Atomic, id: string, before: HeldRow, storedSize: number): Promise<void> {
    if (before.size_limit === null || before.size_limit === undefined) return;
    const held = heldBytes(before);
    const settled = Math.min(Math.max(storedSize, 0), Number(before.size_limit), held);
    await tx.run(new Statement("update uploads set reserved_bytes = ? where id = ?", [settled, id]));
    if (held - settled > 0) {
      await returnPendingBytes(tx, before.tenant_id, held - settled);
      await returnSessionBytes(tx, id, held - settled);
    }
  }

  /** Called after a transition committed webhook deliveries (the relay's nudge). */
  onOutboxWritten(listener: () => void): void {
    this.outboxListener = listener;
  }

  /** Counts a processing attempt (retries, stalled recoveries, reaper re-enqueues). */
  async countAttempt(id: string): Promise<void> {
    await this.db("uploads").where({ id }).increment("attempts", 1);
  }

  /** Pending uploads whose URL expired more than `graceMs` ago. */
  async findExpiredPending(now: Date, graceMs: number, limit = 100): Promise<Upload[]> {
    const rows = await this.db("uploads").where({ status: "pending" satisfies UploadStatus }).andWhere("url_expires_at", "<", now.getTime() - graceMs).orderBy("url_expires_at").limit(limit);
    return rows.map(toUpload);
  }

  /** Pending multipart uploads created before `olderThan`. */
  async findStaleMultipart(olderThan: Date, limit = 100): Promise<Upload[]> {
    const rows = await this.db("uploads").where({ status: "pending" satisfies UploadStatus }).whereNotNull("storage_upload_id").andWhere("created_at", "<", olderThan.getTime()).limit(limit);
    return rows.map(toUpload);
  }

  /** Uploads the pipeline owns (and released uploads being rechecked) that have not moved since `before`. */
  async findStuck(before: Date, limit = 100, after?: { updatedAt: Date; id: string }): Promise<Upload[]> {
    const q = this.db("uploads").whereIn("status", JOB_DRIVEN_STATUSES as UploadStatus[]).andWhere("updated_at", "<", before.getTime());
    // Paged on (updated_at, id): rows the reaper leaves alone (their job is live) must not
    // hide the ones behind them.
    if (after) q.andWhere((w) => w.where("updated_at", ">", after.updatedAt.getTime()).orWhere((w2) => w2.where("updated_at", "=", after.updatedAt.getTime()).andWhere("id", ">", after.id)));
    const rows = await q.orderBy([{ column: "updated_at" }, { column: "id" }]).limit(limit);
    return rows.map(toUpload);
  }

  /**
   * Held uploads (clean results waiting for fresh signatures), longest held first: no job
   * touches a held row, so updated_at is when it was held.
   */
  async findHeld(limit = 100): Promise<Upload[]> {
    const rows = await this.db("uploads").whereIn("status", SIGNATURE_WAIT_STATUSES as UploadStatus[]).orderBy([{ column: "updated_at" }, { column: "id" }]).limit(limit);
    return rows.map(toUpload);
  }

  /** How many uploads are held, and since when the longest held one waits. */
  async heldSummary(): Promise<{ count: number; oldestSince: Date | null }> {
    const row = (await this.db("uploads").whereIn("status", SIGNATURE_WAIT_STATUSES as UploadStatus[]).count({ n: "*" }).min({ oldest: "updated_at" }).first()) as { n: number | string; oldest: number | string | null } | undefined;
    const oldest = row?.oldest;
    return { count: Number(row?.n ?? 0), oldestSince: oldest === null || oldest === undefined ? null : new Date(Number(oldest)) };
  }

  /** Quarantined before `before`, not purged, and past any retention a reviewer set (as of `now`). */
  async findQuarantinedBefore(before: Date, limit = 100, now = new Date()): Promise<Upload[]> {
    const rows = await this.db("uploads").where({ status: "quarantined" satisfies UploadStatus }).whereNull("purged_at").andWhere("finished_at", "<", before.getTime()).andWhereRaw(RETENTION_OVER, [now.getTime()]).limit(limit);
    return rows.map(toUpload);
  }

  /**
   * Quarantined uploads whose bytes are past their retention as of `now`: each by the days its
   * recorded policy kept (quarantine_retention_days), else `defaultDays` (the deployment's),
   * counted from the first verdict, and past any retention a reviewer set. In SQL, so a
   * backlog of uploads kept longer never hides one that is due.
   */
  async findPastRetention(now: Date, defaultDays: number, limit = 100): Promise<Upload[]> {
    const rows = await this.db("uploads")
      .where({ status: "quarantined" satisfies UploadStatus })
      .whereNull("purged_at")
      .andWhereRaw("finished_at + cast(coalesce(quarantine_retention_days, ?) as bigint) * 86400000 < ?", [defaultDays, now.getTime()])
      .andWhereRaw(RETENTION_OVER, [now.getTime()])
      .limit(limit);
    return rows.map(toUpload);
  }

  /** Marks a quarantined upload's bytes as purged; false when it already was. */
  async markPurged(id: string, now = new Date()): Promise<boolean> {
    const count = await this.db("uploads").where({ id }).whereNull("purged_at").update({ purged_at: now.getTime(), updated_at: now.getTime() });
    return count === 1;
  }

  /** Touches updated_at so a re-enqueued upload is not picked again on the next sweep. */
  async touch(id: string, now = new Date()): Promise<void> {
    await this.db("uploads").where({ id }).update({ updated_at: now.getTime() });
  }

  private async findByIdempotencyKey(tenantId: string, key: string): Promise<Upload & { fingerprint: string | null } | null> {
    const row = await this.db("uploads").where({ tenant_id: tenantId, idempotency_key: key }).first();
    return row ? { ...toUpload(row), fingerprint: row.idempotency_fingerprint ?? null } : null;
  }

  private checkFingerprint(existing: Upload & { fingerprint: string | null }, fingerprint: string): Upload {
    if (existing.fingerprint !== fingerprint) {
      throw new ConflictError("idempotency_key_reused", "this Idempotency-Key was already used for a different request");
    }
    const { fingerprint: _f, ...upload } = existing;
    return upload;
  }
}

function auditFindings(f: UploadFindings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) if (v !== undefined && v !== null) out[k] = v;
  return out;
}

export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  // PostgreSQL 23505 unique_violation; SQLite SQLITE_CONSTRAINT_UNIQUE / PRIMARYKEY.
  return e?.code === "23505" || e?.code === "SQLITE_CONSTRAINT_UNIQUE" || e?.code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}

/** The row as a transition first reads it: what it holds in the quotas. */
interface HeldRow {
  status: UploadStatus;
  tenant_id: string;
  object_key: string;
  declared_size: number | string;
  size_limit: number | string | null;
  reserved_bytes: number | string | null;
}

/** The bytes an upload holds in its tenant's open-bytes quota and its session's budget. */
function heldBytes(r: Pick<HeldRow, "declared_size" | "reserved_bytes">): number {
  return Number(r.reserved_bytes ?? r.declared_size);
}

function limitOf(input: NewUpload): number {
  const limit = input.sizeLimit;
  if (limit === undefined || !Number.isSafeInteger(limit) || limit < 1) throw new Error("an upload without a declared size needs a size limit of at least 1 byte");
  return limit;
}

/** A size-unknown upload's limit, narrowed to what the unit's claims still allow (at least 1 byte, or the claims refuse it). */
function narrowLimit(row: Record<string, string | number | null>, remaining: number | null | undefined): void {
  if (remaining === null || remaining === undefined) return;
  const limit = Math.min(Number(row.size_limit), Math.max(remaining, 0));
  if (limit < 1) throw new Error("claims allowed a size-unknown upload no byte: they must refuse it themselves");
  row.size_limit = limit;
  row.reserved_bytes = limit;
  // The number of parts that may be signed follows the limit (5 MiB each at least).
  if (row.storage_upload_id !== null) row.part_count = multipartBound(limit).partCount;
}

/** The policy columns of a new row (migration 0009); the terms without version and digests, which have columns of their own. */
function policyColumns(p: PolicyInForce | undefined): Record<"policy" | "policy_version" | "policy_digest" | "policy_checks_digest" | "quarantine_retention_days", string | number | null> {
  if (!p) return { policy: null, policy_version: null, policy_digest: null, policy_checks_digest: null, quarantine_retention_days: null };
  const { version, digest, checksDigest, ...terms } = p;
  return { policy: JSON.stringify(terms), policy_version: version, policy_digest: digest, policy_checks_digest: checksDigest, quarantine_retention_days: terms.quarantineRetentionDays };
}

/** The recorded policy; a row whose JSON is not a policy's terms reads as none (the deployment's rules, not a guess). */
function policyOf(r: Record<string, any>): PolicyInForce | null {
  if (r.policy === null || r.policy === undefined) return null;
  const terms = termsFrom(JSON.parse(r.policy));
  return terms ? { ...terms, version: Number(r.policy_version ?? 0), digest: r.policy_digest ?? "", checksDigest: r.policy_checks_digest ?? "" } : null;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(Number(v)));

/** A row created without a size (migration 0007: its limit is set, declared_size is 0). */
export function sizeUnknown(r: Record<string, any>): boolean {
  return r.size_limit !== null && r.size_limit !== undefined;
}

function toUpload(r: Record<string, any>): Upload {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    status: r.status,
    filename: r.filename,
    declaredType: r.declared_type,
    declaredSize: sizeUnknown(r) ? null : Number(r.declared_size),
    sizeLimit: Number(r.size_limit ?? r.declared_size),
    declaredSha256: r.declared_sha256 ?? null,
    declaredMd5: r.declared_md5 ?? null,
    metadata: JSON.parse(r.metadata),
    objectKey: r.object_key,
    finalKey: r.final_key ?? null,
    multipart: r.storage_upload_id ? { storageUploadId: r.storage_upload_id, partSize: Number(r.part_size), partCount: Number(r.part_count) } : null,
    urlExpiresAt: new Date(Number(r.url_expires_at)),
    storedSize: num(r.stored_size),
    sniffedType: r.sniffed_type ?? null,
    checkedETag: r.checked_etag ?? null,
    sha256: r.sha256 ?? null,
    scannedMd5: r.scanned_md5 ?? null,
    // PostgreSQL answers a boolean, SQLite 0/1 (and a row written as the API created it, 1/0).
    stripImageMetadata: Boolean(Number(r.strip_image_metadata ?? 0)),
    metadataStripped: Boolean(Number(r.metadata_stripped ?? 0)),
    servedSha256: r.served_sha256 ?? null,
    servedSize: num(r.served_size),
    policy: policyOf(r),
    verdict: r.verdict ?? null,
    reason: r.reason ?? null,
    reasonDetail: r.reason_detail ?? null,
    signature: r.signature ?? null,
    scannerVersion: r.scanner_version ?? null,
    scanContext: r.scan_context ?? null,
    verdictFromCache: r.verdict_from_cache ?? null,
    attempts: Number(r.attempts),
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
    uploadedAt: date(r.uploaded_at),
    inspectedAt: date(r.inspected_at),
    scannedAt: date(r.scanned_at),
    decidedAt: date(r.decided_at),
    finishedAt: date(r.finished_at),
  };
}
