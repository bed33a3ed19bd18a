import type { Knex } from "knex";
import { Statement } from "./unit-of-work.ts";

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
  at: Date;
  detail: Record<string, unknown>;
}

const INSERT_AUDIT = `insert into "audit_events" ("at", "actor", "action", "upload_id", "tenant_id", "object_key", "detail") values (?, ?, ?, ?, ?, ?, ?)`;

/** Append-only record of what the system did and why: compliance reads it, nothing edits it. */
export class AuditLog {
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  async record(entry: AuditEntry, now = new Date()): Promise<void> {
    await this.insertion(entry, now);
  }

  /** The insert, not yet run: for callers that write it atomically with other rows. */
  insertion(entry: AuditEntry, now = new Date()): Knex.QueryBuilder {
    return this.db("audit_events").insert({
      at: now.getTime(),
      actor: entry.actor,
      action: entry.action,
      upload_id: entry.uploadId ?? null,
      tenant_id: entry.tenantId ?? null,
      object_key: entry.objectKey ?? null,
      detail: JSON.stringify(entry.detail ?? {}),
    });
  }

  /**
   * The same insert as a statement of fixed text, for the API's create path: knex's builder
   * compiles its column list on every call, which costs more there than SQLite's insert.
   */
  insertionStatement(entry: AuditEntry, now = new Date()): Statement {
    return new Statement(INSERT_AUDIT, [now.getTime(), entry.actor, entry.action, entry.uploadId ?? null, entry.tenantId ?? null, entry.objectKey ?? null, JSON.stringify(entry.detail ?? {})]);
  }

  async forUpload(uploadId: string): Promise<AuditRecord[]> {
    const rows = await this.db("audit_events").where({ upload_id: uploadId }).orderBy("id");
    return rows.map(toRecord);
  }

  async byAction(action: string, limit = 100): Promise<AuditRecord[]> {
    const rows = await this.db("audit_events").where({ action }).orderBy("id", "desc").limit(limit);
    return rows.map(toRecord);
  }
}

function toRecord(r: Record<string, any>): AuditRecord {
  return {
    id: Number(r.id),
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
