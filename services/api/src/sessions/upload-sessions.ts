import { SESSION_LIMITS } from "@intake/contract";
import { canonicalType, ForbiddenError, InvalidRequestError, NotFoundError, quoteForMessage, UnauthenticatedError, validateMetadata, type Upload, type UploadSessionView } from "@intake/domain";
import type { SessionLimits, UploadSession, UploadSessionRepository } from "@intake/db";
import type { StoredPart } from "@intake/storage";
import type { Transfer } from "@intake/domain";
import type { CreateClaims, CreateInput, CreateResult, SignedPart, SizeUnknownInput, UploadService } from "../upload-service.ts";

/**
 * Upload sessions: what a browser holds instead of the application's API key. The
 * application's backend mints one (API key), hands the token to its end user's browser, and
 * the token can then do nothing but create uploads within the session's limits, complete
 * and abort those uploads (parts too) and read their status.
 *
 * Both ways a token arrives (`Authorization: Bearer is_...` on /v1/uploads, and the token in
 * the path of the Uppy routes) call the same methods here: authenticate, then the use cases
 * that take a SessionGrant.
 */

/** What a proven session token may do, carried on the Caller (http/auth.ts). */
export interface SessionGrant {
  id: string;
  tenantId: string;
  expiresAt: Date;
  limits: SessionLimits;
  metadata: Record<string, string>;
}

export type SessionStore = Pick<UploadSessionRepository, "create" | "authenticate" | "revoke" | "claim" | "remainingBytes" | "owns">;

/** A session's bounds; its types are a subset of its tenant's policy (UploadService.policyFor). */
export interface SessionPolicy {
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  defaultMaxFiles: number;
  maxFiles: number;
}

/** The contract's bounds (the OpenAPI document states them): one place for both. */
export const DEFAULT_SESSION_POLICY = {
  defaultTtlSeconds: SESSION_LIMITS.defaultTtlSeconds,
  maxTtlSeconds: SESSION_LIMITS.maxTtlSeconds,
  defaultMaxFiles: SESSION_LIMITS.defaultMaxFiles,
  maxFiles: SESSION_LIMITS.maxFiles,
} as const;

/** The longest idempotency key a session may send: it is namespaced by the session id (255 in all). */
const MAX_SESSION_IDEMPOTENCY_KEY = 200;

/** The session as its minter sees it (@intake/domain, shared with the SDK). */
export type SessionView = UploadSessionView;

export function sessionView(s: UploadSession): SessionView {
  return {
    id: s.id,
    expiresAt: s.expiresAt.toISOString(),
    revokedAt: s.revokedAt ? s.revokedAt.toISOString() : null,
    maxFiles: s.limits.maxFiles,
    maxBytes: s.limits.maxBytes,
    allowedTypes: s.limits.allowedTypes,
    metadata: s.metadata,
    filesUsed: s.filesUsed,
    bytesUsed: s.bytesUsed,
  };
}

export class UploadSessions {
  private readonly store: SessionStore;
  private readonly uploads: UploadService;
  private readonly policy: SessionPolicy;
  private readonly now: () => Date;

  constructor(o: { store: SessionStore; uploads: UploadService; policy: SessionPolicy; now?: () => Date }) {
    this.store = o.store;
    this.uploads = o.uploads;
    this.policy = o.policy;
    this.now = o.now ?? (() => new Date());
  }

  /** Mints a session for the tenant; the token is returned once and never stored. */
  async mint(tenantId: string, raw: Record<string, unknown>): Promise<{ token: string; expiresAt: Date; session: SessionView }> {
    const p = this.policy;
    const ttl = integerIn(raw.expiresIn, "expiresIn", 60, p.maxTtlSeconds, p.defaultTtlSeconds, "invalid_expiry");
    const maxFiles = integerIn(raw.maxFiles, "maxFiles", 1, p.maxFiles, p.defaultMaxFiles, "invalid_max_files");
    const maxBytes = raw.maxBytes === undefined || raw.maxBytes === null ? null : integerIn(raw.maxBytes, "maxBytes", 1, Number.MAX_SAFE_INTEGER, 1, "invalid_max_bytes");
    // The tenant's policy in force, not the deployment's list: a session never widens it.
    const allowedTypes = subsetOfAllowed(raw.allowedTypes, (await this.uploads.policyFor(tenantId)).allowedTypes);
    const metadata = validateMetadata(raw.metadata);
    const now = this.now();
    const expiresAt = new Date(now.getTime() + ttl * 1000);
    const { token, session } = await this.store.create({ tenantId, expiresAt, limits: { maxFiles, maxBytes, allowedTypes }, metadata }, now);
    return { token, expiresAt, session: sessionView(session) };
  }

  async revoke(tenantId: string, id: string): Promise<SessionView> {
    return sessionView(await this.store.revoke(tenantId, id, this.now()));
  }

  /**
   * The grant a presented token proves, or null for a token that proves nothing (malformed,
   * unknown id, wrong secret: one answer). An expired or revoked session is refused with its
   * own code (401), since its holder proved the secret and needs to know to ask for a new one.
   */
  async authenticate(token: string): Promise<SessionGrant | null> {
    const check = await this.store.authenticate(token, this.now());
    if (!check) return null;
    if (check.status === "revoked") throw new UnauthenticatedError("the upload session has been revoked", "session_revoked");
    if (check.status !== "active") throw new UnauthenticatedError("the upload session has expired; ask the application for a new one", "session_expired");
    const s = check.session;
    return { id: s.id, tenantId: s.tenantId, expiresAt: s.expiresAt, limits: s.limits, metadata: s.metadata };
  }

  /**
   * Declares an upload under the session: its type must be in the session's allowlist, the
   * session's metadata is merged over the client's (the application set it; the browser
   * cannot override it), and the session's budget is claimed in the upload's own unit of work.
   */
  async create(session: SessionGrant, input: CreateInput, idempotencyKey?: string): Promise<CreateResult> {
    const metadata = this.scoped(session, input);
    if (idempotencyKey !== undefined && idempotencyKey.length > MAX_SESSION_IDEMPOTENCY_KEY) {
      throw new InvalidRequestError("invalid_idempotency_key", `an upload session's Idempotency-Key may be at most ${MAX_SESSION_IDEMPOTENCY_KEY} characters`);
    }
    // Namespaced: a session must not replay (and so re-sign) an upload of the API key or of
    // another session that happened to use the same key.
    const key = idempotencyKey === undefined ? undefined : `session:${session.id}:${idempotencyKey}`;
    const result = await this.uploads.create(session.tenantId, { ...input, metadata }, key, this.claims(session));
    if (result.replayed && !(await this.store.owns(session.id, result.upload.id))) throw notFound(result.upload.id);
    return result;
  }

  /**
   * Declares an upload whose size is learned on arrival (the Uppy routes, which get no size):
   * its limit is the per-file maximum narrowed to what the session's budget has left, and the
   * session reserves that limit until the object arrives (then settled to its real size).
   */
  async createWithoutSize(session: SessionGrant, input: SizeUnknownInput, transfer: Transfer): Promise<CreateResult> {
    const metadata = this.scoped(session, input);
    return this.uploads.createWithoutSize(session.tenantId, { ...input, metadata }, transfer, this.claims(session));
  }

  /** The session's type allowlist, and its metadata merged over the client's. */
  private scoped(session: SessionGrant, input: { contentType?: unknown; metadata?: unknown }): unknown {
    if (typeof input.contentType === "string") {
      const type = canonicalType(input.contentType);
      if (type !== null && !session.limits.allowedTypes.includes(type)) {
        throw new ForbiddenError("session_type_not_allowed", `this upload session does not allow ${type}`, { allowed: session.limits.allowedTypes });
      }
    }
    return isPlainObject(input.metadata) || input.metadata === undefined ? { ...(input.metadata ?? {}), ...session.metadata } : input.metadata;
  }

  /** The session's budget, claimed in the upload's unit (and, for a size-unknown upload, what bounds its limit). */
  private claims(session: SessionGrant): CreateClaims {
    return {
      remaining: (tx) => this.store.remainingBytes(tx, session.id, this.now()),
      claim: (tx, upload) => this.store.claim(tx, session.id, upload.id, upload.reservedBytes, this.now()),
    };
  }

  async get(session: SessionGrant, id: string): Promise<Upload> {
    await this.ownership(session, id);
    return this.uploads.get(session.tenantId, id);
  }

  async signParts(session: SessionGrant, id: string, input: Parameters<UploadService["signParts"]>[2]): Promise<SignedPart[]> {
    await this.ownership(session, id);
    return this.uploads.signParts(session.tenantId, id, input);
  }

  async listParts(session: SessionGrant, id: string): Promise<StoredPart[]> {
    await this.ownership(session, id);
    return this.uploads.listParts(session.tenantId, id);
  }

  async complete(session: SessionGrant, id: string, input: { parts?: unknown }): Promise<Upload> {
    await this.ownership(session, id);
    return this.uploads.complete(session.tenantId, id, input);
  }

  async abort(session: SessionGrant, id: string): Promise<Upload> {
    await this.ownership(session, id);
    return this.uploads.abort(session.tenantId, id);
  }

  /** Another session's upload, the API key's, another tenant's: all "not found", like a missing one. */
  private async ownership(session: SessionGrant, id: string): Promise<void> {
    if (typeof id !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(id) || !(await this.store.owns(session.id, id))) throw notFound(id);
  }
}

/** The Caller of a route that refuses session tokens (http/auth.ts callerOf). */
export function sessionNotAllowed(): ForbiddenError {
  return new ForbiddenError("session_not_allowed", "an upload session token may only create, complete and abort its own uploads and read their status; this needs the API key");
}

function notFound(id: string): NotFoundError {
  return new NotFoundError("upload", String(id).slice(0, 64));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function integerIn(raw: unknown, name: string, min: number, max: number, fallback: number, code: string): number {
  if (raw === undefined) return fallback;
  if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < min || raw > max) {
    throw new InvalidRequestError(code, `${name} must be an integer from ${min} to ${max}`);
  }
  return raw;
}

/** A session's allowlist: canonical types, each one the deployment allows (else 400); all of them when absent. */
function subsetOfAllowed(raw: unknown, allowed: readonly string[]): string[] {
  if (raw === undefined) return [...allowed];
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 100) {
    throw new InvalidRequestError("invalid_allowed_types", "allowedTypes must be a non-empty array of at most 100 media types");
  }
  const out = new Set<string>();
  for (const t of raw) {
    const type = typeof t === "string" ? canonicalType(t) : null;
    if (type === null) throw new InvalidRequestError("invalid_allowed_types", `allowedTypes holds ${quoteForMessage(String(t), 100)}, which is not a media type`);
    if (!allowed.includes(type)) {
      throw new InvalidRequestError("session_type_not_allowed", `allowedTypes must be a subset of the types this tenant's policy allows; ${type} is not one of them`, { type, allowed });
    }
    out.add(type);
  }
  return [...out];
}
