import type { Knex } from "knex";
import { InvalidRequestError } from "@intake/domain";
import { atomically } from "./connection.ts";
import { Statement, type Atomic } from "./unit-of-work.ts";
import { chainLink, contentDigest, LINK_FORMAT, storedText, type AuditChainLink } from "./audit-chain.ts";

/** Who acted: a pipeline stage, the API, a command, or a person (admin, with actorId naming them). */
export type Actor = "api" | "ingest" | "inspect" | "scan" | "finalize" | "reaper" | "cli" | "admin" | "recheck" | "webhooks" | "rescan";

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

const LINK_COLUMNS = "seq, at, actor, actor_id, action, upload_id, tenant_id, object_key, detail, justification, state_before, state_after, prev_hash, hash";

/**
 * PostgreSQL: the whole append in one statement. The UPDATE locks the head row (a concurrent
 * appender waits, then sees the new head: READ COMMITTED re-reads a row it waited for), its
 * SET sees the old values (the old hash becomes prev_hash) and computes the link hash as
 * chainLink does; RETURNING hands the new values to the INSERT. One round trip under the lock
 * instead of three: the head is held by one writer at a time, across every process, until
 * its commit, so the time between taking it and committing bounds the trail's throughput.
 */
const APPEND_PG = `with link as (
  update audit_chain_head set seq = seq + 1, prev_hash = hash,
    hash = encode(sha256(convert_to(?::text || ':' || (seq + 1)::text || ':' || hash || ':' || ?::text, 'UTF8')), 'hex')
  where id = 1 returning seq, prev_hash, hash)
insert into audit_events (${LINK_COLUMNS})
select seq, ?::bigint, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, prev_hash, hash from link
returning seq, hash`;

// SQLite: no FOR UPDATE and none needed, every unit runs under the write lock
// (sqlite-group-commit.ts), so reading the head and moving it are separate statements.
const HEAD = `select seq, hash from audit_chain_head where id = 1`;
const INSERT_LINK = `insert into audit_events (${LINK_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
// Conditional on the seq read: should the lock ever not hold, the unit fails instead of
// forking the chain (the unique index on seq is the second line).
const ADVANCE_HEAD = `update audit_chain_head set seq = ?, prev_hash = hash, hash = ? where id = 1 and seq = ?`;

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
  private readonly postgres: boolean;
  constructor(db: Knex) {
    this.db = db;
    this.postgres = (db.client as { config?: { client?: string } }).config?.client === "pg";
  }

  /**
   * Appends a link inside the caller's unit of work, so it commits or rolls back with the
   * change it records. Make it the unit's last statement: it holds the chain head until the
   * commit, and every writer in every process waits for the head (on PostgreSQL a unit that
   * took other row locks after it could also deadlock against one that holds them and waits
   * for the head). Statements of fixed text: the pipeline's transitions call it.
   */
  async append(tx: Atomic, entry: AuditEntry, now = new Date()): Promise<AuditChainLink> {
    const c = {
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
    };
    // Computed before the head is taken: only the last step depends on it.
    const digest = contentDigest(c);
    const fields = [c.at, c.actor, c.actorId, c.action, c.uploadId, c.tenantId, c.objectKey, c.detail, c.justification, c.stateBefore, c.stateAfter];
    if (this.postgres) {
      const link = await tx.first<{ seq: number | string; hash: string }>(new Statement(APPEND_PG, [LINK_FORMAT, digest, ...fields]));
      if (!link) throw headMissing();
      return { seq: Number(link.seq), hash: link.hash };
    }
    const head = await tx.first<{ seq: number | string; hash: string }>(new Statement(HEAD, []));
    if (!head) throw headMissing();
    const prevSeq = Number(head.seq);
    const seq = prevSeq + 1;
    const hash = chainLink(seq, head.hash, digest);
    await tx.run(new Statement(INSERT_LINK, [seq, ...fields, head.hash, hash]));
    if ((await tx.run(new Statement(ADVANCE_HEAD, [seq, hash, prevSeq]))) !== 1) {
      throw new AuditChainError("audit_chain_head_moved", "the audit chain's head moved while it was locked");
    }
    return { seq, hash };
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

const headMissing = () => new AuditChainError("audit_chain_head_missing", "audit_chain_head has no row: the audit chain cannot be extended (run `npm run audit -- verify`)");

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
