import type { Knex } from "knex";
import { sizeUnknown } from "./upload-repository.ts";

/**
 * The compliance review's reads: quarantined uploads (filtered, paged), one in detail, the
 * summary's counts and the human actions behind them. Writes are elsewhere (the actions and
 * the pipeline); nothing here changes a row.
 *
 * "Quarantined" means an upload that got a quarantine verdict and reached a final status:
 * held in quarantine/, purged since (retention or a reviewer's delete), being rechecked or
 * released after a recheck (release_detail set). The record of what was caught outlives what
 * was done about it.
 *
 * Every query takes the reader's tenant scope: a reviewer limited to some tenants reads
 * nothing of the others, in counts as in rows.
 */
export interface QuarantineFilter {
  /** The tenants the reader may see; null: every tenant. An empty list sees nothing. */
  scope: readonly string[] | null;
  tenantId?: string;
  reason?: string;
  /** Case-insensitive substring of the signature name ("eicar" finds "Eicar-Test-Signature"). */
  signature?: string;
  /** finished_at >= this (inclusive). */
  finishedFrom?: Date;
  /** finished_at < this (exclusive). */
  finishedBefore?: Date;
}

/** Position after the last row of a page: newest first, on (finished_at, id). */
export interface QuarantineCursor {
  finishedAt: number;
  id: string;
}

export interface QuarantineRecord {
  id: string;
  tenantId: string;
  /** null when the tenant row is gone (never expected; shown as such rather than hidden). */
  tenantName: string | null;
  status: string;
  filename: string;
  declaredType: string;
  sniffedType: string | null;
  /** null: the size was learned on arrival (storedSize). */
  declaredSize: number | null;
  storedSize: number | null;
  sha256: string | null;
  /** The quarantine reason; null only for a released upload whose recheck cleared it. */
  reason: string | null;
  reasonDetail: string | null;
  signature: string | null;
  scannerVersion: string | null;
  /** The upload whose clamd verdict this one reused (the verdict cache); null or absent: clamd scanned it. */
  verdictFromCache?: string | null;
  objectKey: string;
  finalKey: string | null;
  createdAt: Date;
  uploadedAt: Date | null;
  decidedAt: Date | null;
  finishedAt: Date;
  /** A reviewer's extension of the retention (the default period runs from finishedAt). */
  retentionUntil: Date | null;
  purgedAt: Date | null;
  /** The recheck a release ran and its outcome (JSON as the actions wrote it), if any. */
  releaseDetail: unknown;
}

/** One row of an upload's audit trail, with the person behind a human action named. */
export interface TimelineEntry {
  id: number;
  seq: number | null;
  at: Date;
  actor: string;
  actorId: string | null;
  actorName: string | null;
  action: string;
  stateBefore: string | null;
  stateAfter: string | null;
  justification: string | null;
  detail: Record<string, unknown>;
}

export interface HumanAction extends TimelineEntry {
  uploadId: string;
  tenantId: string;
  tenantName: string | null;
  filename: string;
}

export interface OverrideRecord {
  id: string;
  status: string;
  signature: string | null;
  requestedBy: string;
  requestedByName: string | null;
  requestJustification: string;
  requestedAt: Date;
  decidedBy: string | null;
  decidedByName: string | null;
  decisionJustification: string | null;
  decidedAt: Date | null;
}

export interface Count {
  key: string;
  count: number;
}

export interface QuarantineSummary {
  total: number;
  byReason: Count[];
  byTenant: (Count & { name: string | null })[];
  /** Only days with at least one quarantine; key is the UTC date (YYYY-MM-DD). */
  byDay: Count[];
}

const DAY_MS = 86_400_000;

export class QuarantineQueries {
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  /** Newest first. `next` is set when more rows follow. */
  async list(filter: QuarantineFilter, limit: number, after?: QuarantineCursor): Promise<{ items: QuarantineRecord[]; next: QuarantineCursor | null }> {
    const q = this.selectRecords(filter);
    if (after) {
      // Keyset, not offset: a quarantine arriving while a reviewer pages is newer than every
      // cursor and lands before it, so no row is shown twice or skipped.
      q.andWhere((w) => w.where("u.finished_at", "<", after.finishedAt).orWhere((w2) => w2.where("u.finished_at", "=", after.finishedAt).andWhere("u.id", "<", after.id)));
    }
    const rows = await q.orderBy([{ column: "u.finished_at", order: "desc" }, { column: "u.id", order: "desc" }]).limit(limit + 1);
    const items = rows.slice(0, limit).map(toRecord);
    const last = items.at(-1);
    return { items, next: rows.length > limit && last ? { finishedAt: last.finishedAt.getTime(), id: last.id } : null };
  }

  async count(filter: QuarantineFilter): Promise<number> {
    const q = this.db("uploads as u");
    applyFilter(q, filter);
    const [row] = await q.count({ n: "*" });
    return Number((row as { n: number | string }).n);
  }

  /** One quarantined upload the reader may see; null for any other (absent, not quarantined, another tenant's). */
  async get(id: string, scope: readonly string[] | null): Promise<QuarantineRecord | null> {
    const row = await this.selectRecords({ scope }).andWhere("u.id", id).first();
    return row ? toRecord(row) : null;
  }

  async summary(filter: QuarantineFilter): Promise<QuarantineSummary> {
    const base = () => applyFilter(this.db("uploads as u"), filter);
    const byReason = await base().select("u.reason as key").count({ n: "*" }).groupBy("u.reason").orderBy([{ column: "n", order: "desc" }, { column: "key" }]);
    const byTenant = await base()
      .leftJoin("tenants as t", "t.id", "u.tenant_id")
      .select("u.tenant_id as key", "t.name as name")
      .count({ n: "*" })
      .groupBy("u.tenant_id", "t.name")
      .orderBy([{ column: "n", order: "desc" }, { column: "key" }]);
    // Integer division on both databases (BIGINT / integer in PostgreSQL, INTEGER / INTEGER in SQLite): UTC days since the epoch.
    // The divisor is written into the text, not bound: PostgreSQL cannot tell that two
    // parameters ($1 in the select, $2 in the group by) are the same expression.
    const day = `u.finished_at / ${DAY_MS}`;
    const byDay = await base().select(this.db.raw(`${day} as day`)).count({ n: "*" }).groupByRaw(day).orderBy("day");
    const counts = (rows: any[]) => rows.map((r) => ({ key: r.key === null ? "(none)" : String(r.key), count: Number(r.n) }));
    return {
      total: byReason.reduce((s: number, r: any) => s + Number(r.n), 0),
      byReason: counts(byReason),
      byTenant: byTenant.map((r: any) => ({ key: String(r.key), name: r.name ?? null, count: Number(r.n) })),
      byDay: byDay.map((r: any) => ({ key: new Date(Number(r.day) * DAY_MS).toISOString().slice(0, 10), count: Number(r.n) })),
    };
  }

  /**
   * What people did to uploads in [from, before): audit rows written by the admin actor
   * (releases, deletes, retention extensions, override requests and decisions). Scoped by
   * the upload's tenant, read from the upload itself rather than trusted from the audit row.
   */
  async humanActions(range: { scope: readonly string[] | null; from?: Date; before?: Date; tenantId?: string }, limit: number): Promise<HumanAction[]> {
    const q = this.db("audit_events as a")
      .join("uploads as u", "u.id", "a.upload_id")
      .leftJoin("tenants as t", "t.id", "u.tenant_id")
      .leftJoin("admin_users as p", "p.id", "a.actor_id")
      .where("a.actor", "admin")
      .select("a.*", "p.name as actor_name", "u.tenant_id as upload_tenant_id", "t.name as tenant_name", "u.filename as upload_filename");
    if (range.scope !== null) q.whereIn("u.tenant_id", range.scope as string[]);
    if (range.tenantId) q.where("u.tenant_id", range.tenantId);
    if (range.from) q.where("a.at", ">=", range.from.getTime());
    if (range.before) q.where("a.at", "<", range.before.getTime());
    const rows = await q.orderBy("a.id").limit(limit);
    return rows.map((r: any) => ({ ...toTimelineEntry(r), uploadId: r.upload_id, tenantId: r.upload_tenant_id, tenantName: r.tenant_name ?? null, filename: r.upload_filename }));
  }

  /** The whole audit trail of each upload, oldest first, with people named. */
  async timelines(uploadIds: readonly string[]): Promise<Map<string, TimelineEntry[]>> {
    const out = new Map<string, TimelineEntry[]>(uploadIds.map((id) => [id, []]));
    if (uploadIds.length === 0) return out;
    const rows = await this.db("audit_events as a")
      .leftJoin("admin_users as p", "p.id", "a.actor_id")
      .whereIn("a.upload_id", uploadIds as string[])
      .select("a.*", "p.name as actor_name")
      .orderBy("a.id");
    for (const r of rows) out.get(r.upload_id)?.push(toTimelineEntry(r));
    return out;
  }

  /** Names of admin users by id, for audit rows read elsewhere (AuditLog.forUpload). */
  async adminNames(ids: readonly string[]): Promise<Map<string, string>> {
    const wanted = [...new Set(ids)].filter(Boolean);
    if (wanted.length === 0) return new Map();
    const rows = await this.db("admin_users").whereIn("id", wanted).select("id", "name");
    return new Map(rows.map((r: any) => [String(r.id), String(r.name)]));
  }

  async overrides(uploadId: string): Promise<OverrideRecord[]> {
    const rows = await this.db("quarantine_overrides as o")
      .leftJoin("admin_users as r", "r.id", "o.requested_by")
      .leftJoin("admin_users as d", "d.id", "o.decided_by")
      .where("o.upload_id", uploadId)
      .select("o.*", "r.name as requested_by_name", "d.name as decided_by_name")
      .orderBy("o.requested_at");
    return rows.map((r: any) => ({
      id: r.id,
      status: r.status,
      signature: r.signature ?? null,
      requestedBy: r.requested_by,
      requestedByName: r.requested_by_name ?? null,
      requestJustification: r.request_justification,
      requestedAt: new Date(Number(r.requested_at)),
      decidedBy: r.decided_by ?? null,
      decidedByName: r.decided_by_name ?? null,
      decisionJustification: r.decision_justification ?? null,
      decidedAt: date(r.decided_at),
    }));
  }

  /** The tenants the reader may see, for the filter's choices. */
  async tenants(scope: readonly string[] | null): Promise<{ id: string; name: string }[]> {
    const q = this.db("tenants").select("id", "name").orderBy("name").orderBy("id");
    if (scope !== null) q.whereIn("id", scope as string[]);
    return (await q).map((r: any) => ({ id: String(r.id), name: String(r.name) }));
  }

  private selectRecords(filter: QuarantineFilter): Knex.QueryBuilder {
    const q = this.db("uploads as u").leftJoin("tenants as t", "t.id", "u.tenant_id").select("u.*", "t.name as tenant_name");
    return applyFilter(q, filter);
  }
}

function applyFilter(q: Knex.QueryBuilder, f: QuarantineFilter): Knex.QueryBuilder {
  // The release_detail clause keeps a released upload listed even if its recheck's clean
  // verdict cleared the reason.
  q.where((w) => w.whereNotNull("u.reason").orWhereNotNull("u.release_detail")).whereNotNull("u.finished_at");
  // whereIn with an empty list compiles to a false condition: a reviewer limited to no tenant sees nothing.
  if (f.scope !== null) q.whereIn("u.tenant_id", f.scope as string[]);
  if (f.tenantId !== undefined) q.where("u.tenant_id", f.tenantId);
  if (f.reason !== undefined) q.where("u.reason", f.reason);
  if (f.signature !== undefined) q.whereRaw("lower(u.signature) like ? escape '!'", [`%${escapeLike(f.signature.toLowerCase())}%`]);
  if (f.finishedFrom) q.where("u.finished_at", ">=", f.finishedFrom.getTime());
  if (f.finishedBefore) q.where("u.finished_at", "<", f.finishedBefore.getTime());
  return q;
}

/** A reviewer's "100%" or "a_b" is searched for as typed, not as a pattern. */
function escapeLike(s: string): string {
  return s.replace(/[!%_]/g, (c) => `!${c}`);
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(Number(v)));

function parseJson(text: unknown): unknown {
  if (typeof text !== "string" || text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text; // shown as written rather than lost
  }
}

function toRecord(r: Record<string, any>): QuarantineRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    tenantName: r.tenant_name ?? null,
    status: r.status,
    filename: r.filename,
    declaredType: r.declared_type,
    sniffedType: r.sniffed_type ?? null,
    declaredSize: sizeUnknown(r) ? null : Number(r.declared_size),
    storedSize: num(r.stored_size),
    sha256: r.sha256 ?? null,
    reason: r.reason,
    reasonDetail: r.reason_detail ?? null,
    signature: r.signature ?? null,
    scannerVersion: r.scanner_version ?? null,
    verdictFromCache: r.verdict_from_cache ?? null,
    objectKey: r.object_key,
    finalKey: r.final_key ?? null,
    createdAt: new Date(Number(r.created_at)),
    uploadedAt: date(r.uploaded_at),
    decidedAt: date(r.decided_at),
    finishedAt: new Date(Number(r.finished_at)),
    retentionUntil: date(r.retention_until),
    purgedAt: date(r.purged_at),
    releaseDetail: parseJson(r.release_detail),
  };
}

function toTimelineEntry(r: Record<string, any>): TimelineEntry {
  const detail = parseJson(r.detail);
  return {
    id: Number(r.id),
    seq: num(r.seq),
    at: new Date(Number(r.at)),
    actor: r.actor,
    actorId: r.actor_id ?? null,
    actorName: r.actor_name ?? null,
    action: r.action,
    stateBefore: r.state_before ?? null,
    stateAfter: r.state_after ?? null,
    justification: r.justification ?? null,
    detail: detail && typeof detail === "object" ? (detail as Record<string, unknown>) : { value: detail },
  };
}
