import type { Knex } from "knex";
import { InvalidRequestError } from "@intake/domain";
import { atomically } from "./connection.ts";
import { Statement, type Atomic } from "./unit-of-work.ts";
import { linkHash, storedText, type AuditChainLink } from "./audit-chain.ts";

/** Who acted: a pipeline stage, the API, a command, or a person (admin, with actorId naming them). */
export type Actor = "api" | "ingest" | "inspect" | "scan" | "finalize" | "reaper" | "cli" | "admin" | "recheck" | "webhooks";

export interface AuditEntry {
  actor: Actor;
  action: string;
  uploadId?: string | null;
  tenantId?: string | null;
  objectKey?: string | null;
  detail?: Record<string, unknown>;
  /** The person behind a human action (admin user id), or the command's operator. */
  actorId?: string | null;
  /** Why, in the person's words: mandatory for every human action on an upload. */
  justification?: string | null;
  /** The upload's status before and after, for state changes. */
  stateBefore?: string | null;
  stateAfter?: string | null;
}

export interface AuditRecord extends Required<Omit<AuditEntry, "detail">> {
  id: number;
  /** Position in the chain: 1, 2, 3... in the order the rows were appended, over all writers. */
  seq: number;
  hash: string;
  at: Date;
  detail: Record<string, unknown>;
}

/** Filters for exports and review pages; every one given must hold. */
export interface AuditSearch {
  /** at >= from */
  from?: Date;
  /** at < to */
  to?: Date;
  /** null or absent: every tenant; an empty list: none (a reviewer limited to no tenant sees nothing). */
  tenantIds?: string[] | null;
  /** absent or empty: every action. */
  actions?: string[];
  actor?: Actor;
  actorId?: string;
  uploadId?: string;
  /** 1..MAX_SEARCH_LIMIT */
  limit: number;
  /** `next` of the previous page. */
  cursor?: number | string | null;
  /** Oldest first (the chain's order, the default) or newest first. */
  order?: "asc" | "desc";
}

export interface AuditPage {
  items: AuditRecord[];
  /** Pass as `cursor` for the next page; null when this was the last. */
  next: number | null;
}

export const MAX_SEARCH_LIMIT = 10_000;

const HEAD_FOR_UPDATE = `select seq, hash from audit_chain_head where id = 1 for update`;
// SQLite has no FOR UPDATE, and needs none: every unit runs under the write lock (sqlite-group-commit.ts).
const HEAD = `select seq, hash from audit_chain_head where id = 1`;
const INSERT_LINK = `insert into audit_events (seq, at, actor, actor_id, action, upload_id, tenant_id, object_key, detail, justification, state_before, state_after, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
// Conditional on the seq read under the lock: should the lock ever not hold, the unit fails
// instead of forking the chain (the unique index on seq is the second line).
const ADVANCE_HEAD = `update audit_chain_head set seq = ?, hash = ? where id = 1 and seq = ?`;

/** The chain could not be extended: the unit that asked fails, nothing of it is written. */
export class AuditChainError extends Error {
  readonly code: "audit_chain_head_missing" | "audit_chain_head_moved";
  constructor(code: AuditChainError["code"], message: string) {
    super(message);
    this.name = "AuditChainError";
    this.code = code;
  }
}

/**
 * Append-only record of what the system did and why: compliance reads it, nothing edits it.
 * Every row is a link of a hash chain (audit-chain.ts); `verifyAuditChain` checks it.
 */
export class AuditLog {
  private readonly db: Knex;
  private readonly readHead: string;
  constructor(db: Knex) {
    this.db = db;
    const postgres = (db.client as { config?: { client?: string } }).config?.client === "pg";
    this.readHead = postgres ? HEAD_FOR_UPDATE : HEAD;
  }

  /**
   * Appends a link inside the caller's unit of work, so it commits or rolls back with the
   * change it records. Make it the unit's last statements: on PostgreSQL it locks the chain
   * head until the commit, and every writer in every process waits for that lock (a unit
   * that took other row locks after it could also deadlock against one that holds them and
   * waits for the head). Three statements of fixed text: the pipeline's transitions call it.
   */
  async append(tx: Atomic, entry: AuditEntry, now = new Date()): Promise<AuditChainLink> {
    const head = await tx.first<{ seq: number | string; hash: string }>(new Statement(this.readHead, []));
    if (!head) throw new AuditChainError("audit_chain_head_missing", "audit_chain_head has no row: the audit chain cannot be extended (run `npm run audit -- verify`)");
    const prevSeq = Number(head.seq);
    const content = {
      seq: prevSeq + 1,
      at: now.getTime(),
      actor: entry.actor,
      actorId: storedText(entry.actorId),
      action: storedText(entry.action),
      uploadId: storedText(entry.uploadId),
      tenantId: storedText(entry.tenantId),
      objectKey: storedText(entry.objectKey),
      // JSON.stringify writes lone surrogates as \u escapes: its output is already well-formed.
      detail: JSON.stringify(entry.detail ?? {}),
      justification: storedText(entry.justification),
      stateBefore: storedText(entry.stateBefore),
      stateAfter: storedText(entry.stateAfter),
      prevHash: head.hash,
    };
    const hash = linkHash(content);
    const c = content;
    await tx.run(new Statement(INSERT_LINK, [c.seq, c.at, c.actor, c.actorId, c.action, c.uploadId, c.tenantId, c.objectKey, c.detail, c.justification, c.stateBefore, c.stateAfter, c.prevHash, hash]));
    if ((await tx.run(new Statement(ADVANCE_HEAD, [c.seq, hash, prevSeq]))) !== 1) {
      throw new AuditChainError("audit_chain_head_moved", "the audit chain's head moved while it was locked");
    }
    return { seq: c.seq, hash };
  }

  /** Appends a link in a unit of its own (not inside another unit: pass its Atomic to append). */
  async record(entry: AuditEntry, now = new Date()): Promise<void> {
    await atomically(this.db, (tx) => this.append(tx, entry, now));
  }

  /** An upload's timeline, in the order it happened. */
  async forUpload(uploadId: string): Promise<AuditRecord[]> {
    const rows = await this.db("audit_events").where({ upload_id: uploadId }).orderBy([{ column: "seq" }, { column: "id" }]);
    return rows.map(toRecord);
  }

  async byAction(action: string, limit = 100): Promise<AuditRecord[]> {
    const rows = await this.db("audit_events").where({ action }).orderBy("seq", "desc").limit(limit);
    return rows.map(toRecord);
  }

  /** A page of rows matching every filter given, in chain order (seq), for exports and reviews. */
  async search(s: AuditSearch): Promise<AuditPage> {
    if (!Number.isInteger(s.limit) || s.limit < 1 || s.limit > MAX_SEARCH_LIMIT) throw new InvalidRequestError("invalid_limit", `limit must be an integer from 1 to ${MAX_SEARCH_LIMIT}`);
    const cursor = parseCursor(s.cursor);
    const desc = s.order === "desc";
    if (Array.isArray(s.tenantIds) && s.tenantIds.length === 0) return { items: [], next: null };
    const q = this.db("audit_events").whereNotNull("seq");
    if (s.from) q.andWhere("at", ">=", s.from.getTime());
    if (s.to) q.andWhere("at", "<", s.to.getTime());
    if (s.tenantIds) q.whereIn("tenant_id", s.tenantIds);
    if (s.actions && s.actions.length > 0) q.whereIn("action", s.actions);
    if (s.actor) q.andWhere({ actor: s.actor });
    if (s.actorId) q.andWhere({ actor_id: s.actorId });
    if (s.uploadId) q.andWhere({ upload_id: s.uploadId });
    if (cursor !== null) q.andWhere("seq", desc ? "<" : ">", cursor);
    const rows = await q.orderBy("seq", desc ? "desc" : "asc").limit(s.limit + 1);
    const items = rows.slice(0, s.limit).map(toRecord);
    return { items, next: rows.length > s.limit ? items.at(-1)!.seq : null };
  }
}

function parseCursor(c: number | string | null | undefined): number | null {
  if (c === null || c === undefined || c === "") return null;
  const n = typeof c === "number" ? c : /^\d{1,15}$/.test(c) ? Number(c) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidRequestError("invalid_cursor", "cursor must be the `next` value of a previous page");
  return n;
}

function toRecord(r: Record<string, any>): AuditRecord {
  return {
    id: Number(r.id),
    seq: Number(r.seq),
    hash: r.hash,
    at: new Date(Number(r.at)),
    actor: r.actor,
    action: r.action,
    uploadId: r.upload_id,
    tenantId: r.tenant_id,
    objectKey: r.object_key,
    detail: JSON.parse(r.detail),
    actorId: r.actor_id ?? null,
    justification: r.justification ?? null,
    stateBefore: r.state_before ?? null,
    stateAfter: r.state_after ?? null,
  };
}
