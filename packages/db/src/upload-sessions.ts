import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Knex } from "knex";
import { ForbiddenError, NotFoundError, UnauthenticatedError } from "@intake/domain";
import { Statement, type Atomic } from "./connection.ts";

/**
 * Upload sessions: `is_<id>_<secret>`, the token an application's backend mints for one of
 * its end users so a browser can upload without the API key. Like an API key, the id is
 * public (it finds the row) and only the SHA-256 of the 256-bit random secret is stored.
 *
 * A session is a budget: files_used and bytes_used count the uploads it created (an aborted
 * one still counts, so a leaked token cannot create and abort in a loop). They are claimed
 * in the upload's own unit of work by one conditional UPDATE, like the tenant quotas
 * (tenant-usage.ts): concurrent creates cannot together pass max_files or max_bytes.
 */
export interface SessionLimits {
  maxFiles: number;
  /** null: no total beyond maxFiles x the per-file maximum. */
  maxBytes: number | null;
  allowedTypes: string[];
}

export interface UploadSession {
  id: string;
  tenantId: string;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  limits: SessionLimits;
  metadata: Record<string, string>;
  filesUsed: number;
  bytesUsed: number;
}

export interface NewUploadSession {
  tenantId: string;
  expiresAt: Date;
  limits: SessionLimits;
  metadata: Record<string, string>;
}

/** What a presented token proved: a live session, or why it no longer works. */
export type SessionCheck = { status: "active"; session: UploadSession } | { status: "expired" | "revoked"; sessionId: string };

export const SESSION_TOKEN = /^is_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

/** The session id a token names (not a secret), or null when it is not shaped like one. */
export function sessionIdOf(token: string): string | null {
  return SESSION_TOKEN.exec(token)?.[1] ?? null;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

// One statement, evaluated on the row as it is when the lock is held (PostgreSQL) or under
// the write lock (SQLite): the second of two racing creates sees the first one's counts.
// Revocation and expiry are in it too, so a revoke that commits first stops the claim.
const CLAIM = `update "upload_sessions" set "files_used" = "files_used" + 1, "bytes_used" = "bytes_used" + ? where "id" = ? and "revoked_at" is null and "expires_at" > ? and "files_used" < "max_files" and ("max_bytes" is null or "bytes_used" + ? <= "max_bytes")`;
const LINK = `insert into "upload_session_uploads" ("upload_id", "session_id") values (?, ?)`;
// A size-unknown upload claimed its limit; on arrival the part beyond its real size goes back.
const RETURN_BYTES = `update "upload_sessions" set "bytes_used" = case when "bytes_used" > ? then "bytes_used" - ? else 0 end where "id" = (select "session_id" from "upload_session_uploads" where "upload_id" = ?)`;
const REMAINING = `select "max_bytes" - "bytes_used" as "remaining" from "upload_sessions" where "id" = ? and "max_bytes" is not null`;

/**
 * In the arrival's unit of work (upload-repository.ts settle): gives back to the session that
 * created the upload, if any, what its size limit reserved beyond its real size.
 */
export async function returnSessionBytes(tx: Atomic, uploadId: string, bytes: number): Promise<void> {
  await tx.run(new Statement(RETURN_BYTES, [bytes, bytes, uploadId]));
}

export class UploadSessionRepository {
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  /** Creates a session and returns the only copy of its token. */
  async create(input: NewUploadSession, now = new Date()): Promise<{ token: string; session: UploadSession }> {
    // A clear answer rather than the foreign key's error (whose text quotes the insert).
    if (!(await this.db("tenants").where({ id: input.tenantId }).first("id"))) throw new NotFoundError("tenant", input.tenantId);
    const id = randomBytes(10).toString("hex").slice(0, 16);
    const secret = randomBytes(32).toString("base64url");
    await this.db("upload_sessions").insert({
      id,
      tenant_id: input.tenantId,
      secret_hash: sha256(secret),
      created_at: now.getTime(),
      expires_at: input.expiresAt.getTime(),
      max_files: input.limits.maxFiles,
      max_bytes: input.limits.maxBytes,
      allowed_types: JSON.stringify(input.limits.allowedTypes),
      metadata: JSON.stringify(input.metadata),
      files_used: 0,
      bytes_used: 0,
    });
    return { token: `is_${id}_${secret}`, session: (await this.get(input.tenantId, id))! };
  }

  /**
   * What a presented token is worth: null for a malformed token, an unknown id or a wrong
   * secret (one answer for all three); expired or revoked is said as such, but only to the
   * holder of the right secret.
   */
  async authenticate(token: string, now = new Date()): Promise<SessionCheck | null> {
    const parsed = SESSION_TOKEN.exec(token);
    if (!parsed) return null;
    const row = await this.db("upload_sessions").where({ id: parsed[1] }).first();
    if (!row) return null;
    const want = Buffer.from(row.secret_hash, "hex");
    const got = Buffer.from(sha256(parsed[2]!), "hex");
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    if (row.revoked_at) return { status: "revoked", sessionId: row.id };
    if (Number(row.expires_at) <= now.getTime()) return { status: "expired", sessionId: row.id };
    return { status: "active", session: toSession(row) };
  }

  async get(tenantId: string, id: string): Promise<UploadSession | null> {
    const row = await this.db("upload_sessions").where({ id, tenant_id: tenantId }).first();
    return row ? toSession(row) : null;
  }

  /** Revokes a session of this tenant (another tenant's is "not found"); repeating it is harmless. */
  async revoke(tenantId: string, id: string, now = new Date()): Promise<UploadSession> {
    const session = typeof id === "string" && /^[a-z0-9]{16}$/.test(id) ? await this.get(tenantId, id) : null;
    if (!session) throw new NotFoundError("upload_session", String(id).slice(0, 64));
    if (session.revokedAt) return session;
    await this.db("upload_sessions").where({ id, tenant_id: tenantId }).whereNull("revoked_at").update({ revoked_at: now.getTime() });
    return (await this.get(tenantId, id))!;
  }

  /**
   * Inside an upload's unit of work: counts the upload against the session and records that
   * the session created it. A refusal throws, which undoes the whole unit (the upload's row,
   * its quota claim, its audit entry).
   */
  async claim(tx: Atomic, sessionId: string, uploadId: string, size: number, now = new Date()): Promise<void> {
    const claimed = await tx.run(new Statement(CLAIM, [size, sessionId, now.getTime(), size]));
    if (claimed !== 1) throw await this.refusal(tx, sessionId, size, now);
    await tx.run(new Statement(LINK, [uploadId, sessionId]));
  }

  /**
   * Inside an upload's unit of work, before its claim: the bytes the session may still use
   * (null: no byte budget), which bound an upload whose size is learned on arrival. None left
   * is refused here, as the claim would refuse a declared size. On PostgreSQL the claim's
   * conditional UPDATE still decides between racing creates (both may read the same figure;
   * the second claim then finds it used up and refuses).
   */
  async remainingBytes(tx: Atomic, sessionId: string, now = new Date()): Promise<number | null> {
    const row = await tx.first<{ remaining: number | string }>(new Statement(REMAINING, [sessionId]));
    if (!row) return null;
    const remaining = Number(row.remaining);
    if (remaining < 1) throw await this.refusal(tx, sessionId, 1, now);
    return remaining;
  }

  /** Whether this session created this upload. */
  async owns(sessionId: string, uploadId: string): Promise<boolean> {
    const row = await this.db("upload_session_uploads").where({ upload_id: uploadId, session_id: sessionId }).first();
    return row !== undefined;
  }

  private async refusal(tx: Atomic, sessionId: string, size: number, now: Date): Promise<Error> {
    const row = await tx.first(this.db("upload_sessions").where({ id: sessionId }));
    if (!row) return new UnauthenticatedError("the upload session is unknown", "session_unknown");
    if (row.revoked_at) return new UnauthenticatedError("the upload session has been revoked", "session_revoked");
    if (Number(row.expires_at) <= now.getTime()) return new UnauthenticatedError("the upload session has expired", "session_expired");
    const s = toSession(row);
    if (s.filesUsed >= s.limits.maxFiles) {
      return new ForbiddenError("session_max_files", `this upload session may create at most ${s.limits.maxFiles} uploads and has created them all`, { maxFiles: s.limits.maxFiles, filesUsed: s.filesUsed });
    }
    return new ForbiddenError("session_max_bytes", `this upload would bring the session to ${s.bytesUsed + size} bytes; it may upload at most ${s.limits.maxBytes}`, {
      maxBytes: s.limits.maxBytes,
      bytesUsed: s.bytesUsed,
      size,
    });
  }
}

function toSession(r: Record<string, any>): UploadSession {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    createdAt: new Date(Number(r.created_at)),
    expiresAt: new Date(Number(r.expires_at)),
    revokedAt: r.revoked_at ? new Date(Number(r.revoked_at)) : null,
    limits: {
      maxFiles: Number(r.max_files),
      maxBytes: r.max_bytes === null || r.max_bytes === undefined ? null : Number(r.max_bytes),
      allowedTypes: JSON.parse(r.allowed_types) as string[],
    },
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    filesUsed: Number(r.files_used),
    bytesUsed: Number(r.bytes_used),
  };
}
