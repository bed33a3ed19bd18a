import { createHash, randomBytes } from "node:crypto";
import {
  ConflictError,
  contentDisposition,
  DependencyUnavailableError,
  InvalidRequestError,
  MIN_PART_SIZE,
  NotFoundError,
  objectKey,
  partLength,
  PayloadTooLargeError,
  quoteForMessage,
  ARRIVED_STATUSES,
  urlTtl,
  validateDeclaration,
  validatePartRequests,
  validateSizeUnknownDeclaration,
  refuseArchiveDeclaration,
  type PolicyInForce,
  type Transfer,
  type RawDeclaration,
  type TenantQuotas,
  type Upload,
  type UploadDeclaration,
  type UploadPolicy,
  type UploadStatus,
} from "@intake/domain";
import type { Atomic, CreateClaims as UnitClaims, UploadRepository } from "@intake/db";
import { verifiedContentType } from "@intake/pipeline";
import type { PoliciesInForce } from "./policies/tenant-policies.ts";
import { StorageRequestError, type ObjectStore, type PresignedPost, type PresignedRequest, type StoredPart } from "@intake/storage";

/**
 * The API's use cases, free of HTTP: declare an upload (and sign its URL), sign part URLs,
 * list stored parts, complete, abort, read, list, and sign a download. Koa handlers only
 * translate requests into these calls and results into responses.
 */

/** Hands an upload to the pipeline once its object is there. */
export interface Processing {
  /** Queues the first stage of an arrived upload (which one depends on its size: stageFor). */
  startChecks(upload: Upload): Promise<void>;
}

export type UploadRecords = Pick<UploadRepository, "create" | "get" | "list" | "transition">;

/** Where the service reports what it did (@intake/metrics); a counter increment, no I/O. */
export interface UploadMetrics {
  uploadCreated(kind: "single" | "multipart"): void;
}

export interface UploadServiceOptions {
  uploads: UploadRecords;
  store: ObjectStore;
  processing: Processing;
  /** The deployment's rules (configuration): the multipart plan, and the terms of uploads declared before tenant policies. */
  policy: UploadPolicy & { downloadUrlTtlSeconds: number };
  /** Each tenant's policy in force (policies/tenant-policies.ts): what a new upload is declared under. */
  policies: PoliciesInForce;
  /** The longest (and default) life of a multipart upload (the reaper's multipart TTL). */
  multipartWindowSeconds: number;
  /** Part URLs one request may ask for. */
  maxPartsPerRequest: number;
  /** Per-tenant quotas, claimed atomically with the upload's row. */
  quotas: TenantQuotas;
  metrics?: UploadMetrics;
  now?: () => Date;
}

export interface CreateInput extends RawDeclaration {
  expiresIn?: unknown;
  /** "PUT" (default) or "POST" (a presigned form upload, single uploads only). */
  method?: unknown;
}

/**
 * Further claims on a new upload, run in the unit of work that writes its row (an upload
 * session's budget, sessions/upload-sessions.ts): a refusal writes nothing. `remaining`
 * bounds an upload whose size is learned on arrival (its limit is narrowed to it).
 */
export interface CreateClaims {
  remaining?(tx: Atomic): Promise<number | null>;
  claim(tx: Atomic, upload: { id: string; reservedBytes: number }): Promise<void>;
}

/** A declaration without a size (the Uppy routes when Uppy sends none): the client's transfer is taken as it is. */
export type SizeUnknownInput = Pick<RawDeclaration, "filename" | "contentType" | "metadata">;

export type CreateResult =
  | { kind: "single"; upload: Upload; replayed: boolean; request: PresignedRequest | PresignedPost }
  | { kind: "multipart"; upload: Upload; replayed: boolean; partSize: number; partCount: number; expiresAt: Date };

export interface SignedPart extends PresignedRequest {
  partNumber: number;
  /** null: a part of a size-unknown upload, whose length the client picks. */
  size: number | null;
}

/** GET /v1/uploads's query once its shape is checked (the contract's ListUploadsQuery). */
export interface ListQuery {
  status?: UploadStatus | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,64}$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const ETAG = /^"?[A-Za-z0-9._-]{1,128}"?$/;
const ALREADY_ARRIVED = ARRIVED_STATUSES;

export class UploadService {
  private readonly o: UploadServiceOptions;
  private readonly now: () => Date;

  constructor(options: UploadServiceOptions) {
    this.o = options;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Declares an upload. The row is written as `pending` before any URL is signed, so every
   * URL that exists has a record (and the reaper something to expire). With an
   * Idempotency-Key a retry gets the same upload, with a URL that expires when the first did.
   */
  async create(tenantId: string, input: CreateInput, idempotencyKey?: string, claims?: CreateClaims): Promise<CreateResult> {
    const inForce = await this.policyFor(tenantId);
    refuseArchiveDeclaration(input.contentType, inForce);
    const policy = this.rulesOf(inForce);
    const declaration = validateDeclaration(input, policy);
    return this.declare(tenantId, declaration, uploadMethod(input.method, declaration), input.expiresIn, idempotencyKey, claims, inForce);
  }

  /**
   * Declares an upload whose size is learned on arrival (@intake/domain upload-size.ts): a
   * form POST whose policy admits 1 byte up to its limit, or a multipart upload whose part
   * URLs bind no length but are signed for as many parts as the limit needs. The limit (the
   * per-file maximum, narrowed by the session's remaining budget in the create's unit) is
   * what the quotas and the session reserve until the object arrives.
   */
  async createWithoutSize(tenantId: string, input: SizeUnknownInput, transfer: Transfer, claims?: CreateClaims): Promise<CreateResult> {
    const inForce = await this.policyFor(tenantId);
    refuseArchiveDeclaration(input.contentType, inForce);
    const declaration = validateSizeUnknownDeclaration(input, this.rulesOf(inForce), transfer);
    return this.declare(tenantId, declaration, transfer === "form" ? "POST" : "PUT", undefined, undefined, claims, inForce);
  }

  /**
   * The tenant's policy in force now (tenant-policy.ts): what a new upload is declared under
   * and records (Upload.policy), and what an upload session's types must be a subset of.
   */
  policyFor(tenantId: string): Promise<PolicyInForce> {
    return this.o.policies.inForce(tenantId);
  }

  /** The declaration rules of a policy in force: the tenant's terms, the deployment's multipart plan. */
  private rulesOf(p: PolicyInForce): UploadPolicy {
    return { ...this.o.policy, allowedTypes: p.allowedTypes, maxSize: p.maxSize, urlTtlSeconds: p.urlTtlSeconds, maxUrlTtlSeconds: p.maxUrlTtlSeconds, stripImageMetadata: p.stripImageMetadata, policyVersion: p.version };
  }

  /** An existing upload's rules: the policy recorded on it, else (declared before policies) the deployment's. */
  private recordedRules(upload: Upload): UploadPolicy {
    return upload.policy ? this.rulesOf(upload.policy) : this.o.policy;
  }

  private async declare(tenantId: string, declaration: UploadDeclaration, method: "PUT" | "POST", expiresIn: unknown, idempotencyKey: string | undefined, claims: CreateClaims | undefined, inForce: PolicyInForce): Promise<CreateResult> {
    const input = { expiresIn };
    const ttl = declaration.multipart ? multipartLifetime(input.expiresIn, this.o.multipartWindowSeconds) : urlTtl(input.expiresIn, this.rulesOf(inForce));
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new InvalidRequestError("invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters");
    }
    const idempotency = idempotencyKey === undefined ? undefined : { key: idempotencyKey, fingerprint: fingerprint(declaration, input.expiresIn, method) };
    const now = this.now();
    const id = newUploadId(now);
    const key = objectKey("pending", tenantId, id);
    const alongside: UnitClaims | undefined = claims
      ? { ...(claims.remaining ? { remaining: (tx: Atomic) => claims.remaining!(tx) } : {}), claim: (tx: Atomic, reservedBytes: number) => claims.claim(tx, { id, reservedBytes }) }
      : undefined;
    const base = {
      id,
      tenantId,
      filename: declaration.filename,
      declaredType: declaration.contentType,
      declaredSize: declaration.size,
      sizeLimit: declaration.sizeLimit,
      ...(declaration.sha256 ? { declaredSha256: declaration.sha256 } : {}),
      ...(declaration.md5 ? { declaredMd5: declaration.md5 } : {}),
      metadata: declaration.metadata,
      objectKey: key,
      // Recorded now: the pipeline judges (and strips) by the policy the upload was made under.
      stripImageMetadata: inForce.stripImageMetadata,
      policy: inForce,
      ...(idempotency ? { idempotency } : {}),
    };

    if (!declaration.multipart) {
      const { upload, created } = await this.o.uploads.create({ ...base, multipart: null, urlExpiresAt: new Date(now.getTime() + ttl * 1000) }, now, this.o.quotas, alongside);
      if (upload.multipart) throw new ConflictError("idempotency_key_reused", "this Idempotency-Key was already used for a different request");
      const expiresIn = created ? ttl : this.replayLifetime(upload, now);
      const request =
        method === "POST"
          ? await this.o.store.presignPost(upload.objectKey, { contentType: upload.declaredType, ...postSize(upload), expiresIn })
          : await this.o.store.presignPut(upload.objectKey, putBinding(upload, expiresIn));
      if (created) this.o.metrics?.uploadCreated("single");
      return { kind: "single", upload, replayed: !created, request };
    }

    // The storage's UploadId must be in the row, so the multipart upload is created first;
    // if the row is not written (replay, conflict, quota, database down) it is aborted
    // again, so no parts can be stored under an upload nobody knows about.
    // The row's urlExpiresAt is the multipart upload's whole life (expiresIn): part URLs end
    // by then, complete is refused after it, and the reaper aborts it from that field alone.
    // Where storage verifies part sha256s (AWS S3), a declared sha256 makes the upload one
    // whose every part must carry its own (partSha256Required), so storage checks each part.
    const storageUploadId = await this.o.store.createMultipart(key, declaration.contentType, { sha256Parts: declaration.sha256 !== undefined });
    let result: { upload: Upload; created: boolean };
    try {
      const lifeEnd = new Date(now.getTime() + ttl * 1000);
      result = await this.o.uploads.create({ ...base, multipart: { ...declaration.multipart, storageUploadId }, urlExpiresAt: lifeEnd }, now, this.o.quotas, alongside);
    } catch (err) {
      await this.o.store.abortMultipart(key, storageUploadId).catch(() => undefined);
      throw err;
    }
    const { upload, created } = result;
    if (!created) {
      await this.o.store.abortMultipart(key, storageUploadId).catch(() => undefined);
      this.replayLifetime(upload, now);
    }
    if (!upload.multipart) throw new ConflictError("idempotency_key_reused", "this Idempotency-Key was already used for a different request");
    if (created) this.o.metrics?.uploadCreated("multipart");
    return { kind: "multipart", upload, replayed: !created, partSize: upload.multipart.partSize, partCount: upload.multipart.partCount, expiresAt: upload.urlExpiresAt };
  }

  /** Seconds left on a replayed upload's URL: the replay never extends the first one's life. */
  private replayLifetime(upload: Upload, now: Date): number {
    if (upload.status !== "pending") {
      throw new ConflictError("upload_not_pending", `the upload for this Idempotency-Key is already ${upload.status}`, { id: upload.id, status: upload.status });
    }
    const left = Math.floor((upload.urlExpiresAt.getTime() - now.getTime()) / 1000);
    if (left < 1) throw new ConflictError("upload_url_expired", "the upload for this Idempotency-Key has expired; declare a new upload", { id: upload.id });
    return left;
  }

  async get(tenantId: string, id: string): Promise<Upload> {
    // Another tenant's upload is "not found", exactly like a missing one (no 403 oracle).
    const upload = UPLOAD_ID.test(id) ? await this.o.uploads.get(tenantId, id) : null;
    if (!upload) throw new NotFoundError("upload", id.slice(0, 64));
    return upload;
  }

  async list(tenantId: string, q: ListQuery): Promise<{ items: Upload[]; nextCursor: string | null }> {
    const { status } = q;
    const limit = q.limit ?? 20;
    const cursor = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const page = await this.o.uploads.list(tenantId, { limit, ...(status ? { status } : {}), ...(cursor ? { cursor } : {}) });
    return { items: page.items, nextCursor: page.next ? encodeCursor(page.next) : null };
  }

  /**
   * Part URLs, for `partNumbers` or for `parts` with per-part checksums (md5 base64, sha256
   * hex), each bound into its URL: the client then sends the headers each part returns.
   */
  async signParts(tenantId: string, id: string, input: { partNumbers?: unknown; parts?: unknown; expiresIn?: unknown }): Promise<SignedPart[]> {
    const upload = await this.pendingMultipart(tenantId, id);
    const plan = upload.multipart!;
    const requested = validatePartRequests(input, plan, this.o.maxPartsPerRequest);
    this.checkPartSha256s(upload, requested);
    // A part URL never outlives its upload: its lifetime is cut to what the upload has left.
    const left = Math.floor((upload.urlExpiresAt.getTime() - this.now().getTime()) / 1000);
    if (left < 1) throw multipartExpired(upload);
    const ttl = Math.min(urlTtl(input.expiresIn, this.recordedRules(upload)), left);
    return Promise.all(
      requested.map(async ({ partNumber, md5, sha256 }) => {
        // A size-unknown upload's parts bind no length (the client picks its part size); how
        // many may be signed is bounded by its limit (plan.partCount, checked above).
        const size = upload.declaredSize === null ? null : partLength(upload.declaredSize, plan, partNumber);
        const binding = { ...(size !== null ? { contentLength: size } : {}), expiresIn: ttl, ...(md5 ? { md5Base64: md5 } : {}), ...(sha256 ? { sha256Hex: sha256 } : {}) };
        const request = await this.o.store.presignPart(upload.objectKey, plan.storageUploadId, partNumber, binding);
        return { ...request, partNumber, size };
      }),
    );
  }

  /**
   * Storage that verifies part sha256s (capabilities.verifiesPartSha256) needs one on every
   * part of an upload created with them and refuses one on any other upload: both are
   * refused here, with a clear error, instead of by storage at PUT time.
   */
  private checkPartSha256s(upload: Upload, requested: { partNumber: number; sha256?: string }[]): void {
    if (!this.o.store.capabilities.verifiesPartSha256) return;
    if (partSha256Required(upload, this.o.store)) {
      const missing = requested.filter((p) => p.sha256 === undefined).map((p) => p.partNumber);
      if (missing.length > 0) {
        throw new InvalidRequestError("part_checksum_required", "this upload declared a sha256: every part needs its own sha256 (parts: [{partNumber, sha256}])", { missing: missing.slice(0, 100) });
      }
    } else {
      const given = requested.find((p) => p.sha256 !== undefined);
      if (given) throw new InvalidRequestError("part_checksum_unsupported", "part sha256s can be bound only on an upload that declared its sha256 on create", { partNumber: given.partNumber });
    }
  }

  /** The parts storage holds, so a client can resume; 501 where storage has no ListParts. */
  async listParts(tenantId: string, id: string): Promise<StoredPart[]> {
    const upload = await this.pendingMultipart(tenantId, id);
    return this.o.store.listParts(upload.objectKey, upload.multipart!.storageUploadId);
  }

  /**
   * The client says its bytes are there. HeadObject (no bytes read) must show the object
   * with the declared size; then `pending -> uploaded` as a guarded transition and the
   * upload goes to inspection. Repeating it is harmless: an upload that already arrived is
   * returned as it is (and re-enqueued while still `uploaded`: the job id deduplicates).
   */
  async complete(tenantId: string, id: string, input: { parts?: unknown }): Promise<Upload> {
    const upload = await this.get(tenantId, id);
    if (ALREADY_ARRIVED.includes(upload.status)) {
      if (input.parts !== undefined && !upload.multipart) throw notMultipart(id);
      if (upload.status === "uploaded") await this.enqueue(upload);
      return upload;
    }
    assertPending(upload);
    if (upload.multipart) {
      // Past its life the reaper may be aborting it at this moment: refuse rather than race.
      if (this.now().getTime() >= upload.urlExpiresAt.getTime()) throw multipartExpired(upload);
      const sizeUnknown = upload.declaredSize === null;
      const parts = validateCompletedParts(input.parts, upload.multipart.partCount, { fewerAllowed: sizeUnknown });
      if (sizeUnknown) await this.checkPartsWithinLimit(upload, parts);
      await this.completeMultipart(upload, parts);
    } else if (input.parts !== undefined) {
      throw notMultipart(id);
    }

    const head = await this.o.store.head(upload.objectKey);
    if (!head) {
      throw new ConflictError("object_missing", "no object has been uploaded for this upload yet; PUT the bytes to the URL first", { id, status: upload.status });
    }
    // A size learned on arrival is recorded as it is: the transition settles the quotas and
    // the session's budget to it, and the pipeline refuses an object over the limit or empty.
    if (upload.declaredSize !== null && head.size !== upload.declaredSize) {
      throw new ConflictError("size_mismatch", `the stored object has ${head.size} bytes, ${upload.declaredSize} were declared`, { id, declaredSize: upload.declaredSize, storedSize: head.size });
    }
    const result = await this.o.uploads.transition(upload.id, "arrived", "api", { storedSize: head.size });
    const current = result.upload ?? upload;
    // Not applied: a storage event (ingest) moved it first, or an abort/expiry won the race.
    if (!result.applied && !ALREADY_ARRIVED.includes(current.status)) assertPending(current);
    if (current.status === "uploaded") await this.enqueue(current);
    return current;
  }

  /**
   * A size-unknown multipart upload, before it is completed: where storage lists parts, the
   * parts named must be there, every one but the last at least S3's 5 MiB (S3 refuses smaller
   * ones at complete; stand-ins may not), and all of them within the limit. Over the limit it
   * is aborted (its stored parts freed) and refused: such bytes are never assembled. Where
   * storage cannot list parts, the object is assembled and the pipeline refuses it instead.
   */
  private async checkPartsWithinLimit(upload: Upload, parts: { partNumber: number }[]): Promise<void> {
    if (!this.o.store.capabilities.listsParts) return;
    const stored = new Map((await this.o.store.listParts(upload.objectKey, upload.multipart!.storageUploadId)).map((p) => [p.partNumber, p.size]));
    let total = 0;
    for (const [i, { partNumber }] of parts.entries()) {
      const size = stored.get(partNumber);
      if (size === undefined) throw new InvalidRequestError("part_missing", `part ${partNumber} is not stored; upload it before completing`, { partNumber });
      if (i < parts.length - 1 && size < MIN_PART_SIZE) {
        throw new InvalidRequestError("part_too_small", `part ${partNumber} has ${size} bytes; every part but the last needs at least ${MIN_PART_SIZE}`, { partNumber, size, minPartSize: MIN_PART_SIZE });
      }
      total += size;
    }
    if (total > upload.sizeLimit) {
      const aborted = await this.o.uploads.transition(upload.id, "abort", "api");
      if (aborted.applied) await this.o.store.abortMultipart(upload.objectKey, upload.multipart!.storageUploadId).catch(() => undefined);
      throw new PayloadTooLargeError("size_over_limit", `the parts hold ${total} bytes; this upload may hold at most ${upload.sizeLimit}: it has been aborted`, { id: upload.id, size: total, sizeLimit: upload.sizeLimit });
    }
  }

  private async completeMultipart(upload: Upload, parts: { partNumber: number; eTag: string }[]): Promise<void> {
    try {
      await this.o.store.completeMultipart(upload.objectKey, upload.multipart!.storageUploadId, await this.withPartSha256s(upload, parts));
    } catch (err) {
      // NoSuchUpload after an earlier complete that reached storage but not the database
      // (a crash, a timeout): the object is there and the HeadObject below decides.
      if (err instanceof StorageRequestError && err.storageCode === "NoSuchUpload") return;
      throw err;
    }
  }

  /**
   * CompleteMultipartUpload of an upload created with part sha256s must name each part's
   * checksum: the ones storage verified and keeps (ListParts), so the client's complete call
   * stays {partNumber, etag} (as Uppy sends it).
   */
  private async withPartSha256s(upload: Upload, parts: { partNumber: number; eTag: string }[]): Promise<{ partNumber: number; eTag: string; sha256Hex?: string }[]> {
    if (!partSha256Required(upload, this.o.store)) return parts;
    const stored = new Map((await this.o.store.listParts(upload.objectKey, upload.multipart!.storageUploadId)).map((p) => [p.partNumber, p.sha256Hex]));
    return parts.map((p) => {
      const sha256Hex = stored.get(p.partNumber);
      return sha256Hex ? { ...p, sha256Hex } : p;
    });
  }

  /**
   * Cancels a pending upload: the transition first (so a concurrent complete cannot hand a
   * half-deleted object to the pipeline), then the storage: AbortMultipartUpload frees the
   * stored parts (S3 keeps and bills them until then), and any object already PUT is
   * deleted. Repeating it on an aborted upload repeats the cleanup, which is idempotent.
   */
  async abort(tenantId: string, id: string): Promise<Upload> {
    let upload = await this.get(tenantId, id);
    if (upload.status === "pending") {
      const result = await this.o.uploads.transition(upload.id, "abort", "api");
      upload = result.upload ?? upload;
    }
    if (upload.status !== "aborted") {
      throw new ConflictError("upload_not_abortable", `only pending uploads can be aborted; this one is ${upload.status}`, { id, status: upload.status });
    }
    if (upload.multipart) await this.o.store.abortMultipart(upload.objectKey, upload.multipart.storageUploadId);
    await this.o.store.delete(upload.objectKey);
    return upload;
  }

  /**
   * A short presigned GET for a verified upload, served as an attachment with the verified
   * type: a polyglot that passed the checks must still not render inline (OWASP).
   */
  async download(tenantId: string, id: string): Promise<PresignedRequest> {
    const upload = await this.get(tenantId, id);
    if (upload.status !== "verified") {
      throw new ConflictError("upload_not_verified", `only verified uploads can be downloaded; this one is ${upload.status}`, { id, status: upload.status });
    }
    return this.o.store.presignGet(upload.finalKey ?? objectKey("verified", upload.tenantId, upload.id), {
      // The verified type, canonical, as finalize stored it on the object: not the sniffer's
      // name for the bytes (an SVG starting with <?xml is "application/xml" to file-type).
      contentType: verifiedContentType(upload),
      contentDisposition: contentDisposition(upload.filename),
      expiresIn: this.o.policy.downloadUrlTtlSeconds,
    });
  }

  private async pendingMultipart(tenantId: string, id: string): Promise<Upload> {
    const upload = await this.get(tenantId, id);
    if (!upload.multipart) throw notMultipart(id);
    assertPending(upload);
    return upload;
  }

  private async enqueue(upload: Upload): Promise<void> {
    try {
      await this.o.processing.startChecks(upload);
    } catch (err) {
      // The state is recorded; a retried complete enqueues again (and the reaper re-enqueues
      // uploads stuck in `uploaded`), so telling the client to retry is safe.
      throw new DependencyUnavailableError("queue", "the upload is recorded but could not be handed to processing; retry the request", { cause: err });
    }
  }
}

function assertPending(upload: Upload): void {
  if (upload.status !== "pending") {
    throw new ConflictError("upload_not_pending", `the upload is ${upload.status}`, { id: upload.id, status: upload.status });
  }
}

function multipartExpired(upload: Upload): ConflictError {
  return new ConflictError("multipart_upload_expired", `this multipart upload expired at ${upload.urlExpiresAt.toISOString()}; declare a new upload`, { id: upload.id, expiresAt: upload.urlExpiresAt.toISOString() });
}

/** A multipart upload's whole life: expiresIn when given, from 60 s up to the reaper's multipart TTL. */
function multipartLifetime(requested: unknown, maxSeconds: number): number {
  if (requested === undefined) return maxSeconds;
  if (typeof requested !== "number" || !Number.isInteger(requested) || requested < 60 || requested > maxSeconds) {
    throw new InvalidRequestError("invalid_expiry", `expiresIn of a multipart upload must be an integer from 60 to ${maxSeconds} seconds`);
  }
  return requested;
}

/**
 * How the client sends a single upload's bytes. POST is a form with a signed policy
 * (post-presigner.ts): single uploads only, since parts are PUTs. Content-MD5 is bound only
 * into a PUT's signature (a POST policy has no condition S3 checks against the body's MD5),
 * so an upload declaring md5 is a PUT; a declared sha256 is still compared by the pipeline.
 */
function uploadMethod(raw: unknown, d: UploadDeclaration): "PUT" | "POST" {
  if (raw === undefined || raw === "PUT") return "PUT";
  if (raw !== "POST") throw new InvalidRequestError("invalid_method", 'method must be "PUT" or "POST"');
  if (d.multipart) {
    throw new InvalidRequestError("post_single_only", `a presigned POST is for single uploads; ${d.size} bytes get a multipart upload (PUT parts): leave method out`, { size: d.size });
  }
  if (d.md5) throw new InvalidRequestError("md5_needs_put", "md5 is bound into a presigned PUT only; leave method out or declare sha256 instead");
  return "POST";
}

/** A multipart upload created with ChecksumAlgorithm SHA256: declared sha256, on storage that verifies part sha256s. */
function partSha256Required(upload: Upload, store: ObjectStore): boolean {
  return upload.multipart !== null && upload.declaredSha256 !== null && store.capabilities.verifiesPartSha256;
}

function notMultipart(id: string): InvalidRequestError {
  return new InvalidRequestError("not_multipart", "this upload is a single PUT: it has no parts", { id });
}

/** What a POST policy admits: the declared size exactly, or 1 byte up to the limit. */
function postSize(u: Upload): { contentLength: number } | { maxContentLength: number } {
  return u.declaredSize === null ? { maxContentLength: u.sizeLimit } : { contentLength: u.declaredSize };
}

function putBinding(u: Upload, expiresIn: number) {
  // Only a declared size gets a PUT: size-unknown uploads are form POSTs or multipart.
  if (u.declaredSize === null) throw new Error(`upload ${u.id} has no declared size to bind into a PUT`);
  return {
    contentType: u.declaredType,
    contentLength: u.declaredSize,
    expiresIn,
    ...(u.declaredSha256 ? { sha256Hex: u.declaredSha256 } : {}),
    ...(u.declaredMd5 ? { md5Base64: u.declaredMd5 } : {}),
  };
}

/**
 * CompleteMultipartUpload needs every part, in ascending order, each with the ETag storage
 * returned. A size-unknown upload (fewerAllowed) has as many parts as its client cut, up to
 * its bound: parts 1 to n, none missing.
 */
export function validateCompletedParts(raw: unknown, partCount: number, o: { fewerAllowed?: boolean } = {}): { partNumber: number; eTag: string }[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new InvalidRequestError("invalid_parts", "parts must be a non-empty array of {partNumber, etag}");
  }
  const seen = new Map<number, string>();
  for (const p of raw) {
    if (typeof p !== "object" || p === null || Array.isArray(p)) throw new InvalidRequestError("invalid_parts", "each part must be an object {partNumber, etag}");
    const unknown = Object.keys(p).find((k) => k !== "partNumber" && k !== "etag");
    if (unknown) throw new InvalidRequestError("unknown_field", `unknown field ${quoteForMessage(unknown, 100)} in parts[]`, { field: unknown.slice(0, 100) });
    const { partNumber, etag } = p as { partNumber?: unknown; etag?: unknown };
    if (!Number.isInteger(partNumber) || (partNumber as number) < 1 || (partNumber as number) > partCount) {
      throw new InvalidRequestError("invalid_parts", `partNumber must be an integer from 1 to ${partCount}`, { partNumber });
    }
    if (typeof etag !== "string" || !ETAG.test(etag)) throw new InvalidRequestError("invalid_parts", "etag must be the ETag storage returned for the part", { partNumber });
    if (seen.has(partNumber as number)) throw new InvalidRequestError("duplicate_part_number", `part ${partNumber} is listed twice`, { partNumber });
    seen.set(partNumber as number, etag);
  }
  const expected = o.fewerAllowed ? Math.max(...seen.keys()) : partCount;
  if (seen.size !== expected) {
    const missing = Array.from({ length: expected }, (_, i) => i + 1).filter((n) => !seen.has(n));
    throw new InvalidRequestError("missing_parts", `all ${expected} parts are needed to complete`, { missing: missing.slice(0, 100) });
  }
  return [...seen.entries()].sort(([a], [b]) => a - b).map(([partNumber, eTag]) => ({ partNumber, eTag }));
}

/**
 * An upload id: the creation time (milliseconds, 12 hex digits) then 128 random bits (32 hex
 * digits), which keep it unguessable, and never the filename. The time comes first so that
 * ids, object keys and the audit rows' upload ids sort in the order they are written: each
 * create then adds to the last page of those indexes, which one group commit shares, instead
 * of to a random page of each (the WAL and the checkpoints copy every page a commit touched:
 * with random ids the create's database work cost 107 µs instead of 76).
 */
export function newUploadId(now: Date): string {
  return now.getTime().toString(16).padStart(12, "0") + idRandomness.next();
}

/**
 * Random bytes for ids, drawn from the CSPRNG a few KiB at a time: one randomBytes call per
 * id cost about 6 µs on the create path, most of it the call itself. Each id takes bytes no
 * other id took (the pool is refilled, never reused).
 */
const idRandomness = {
  pool: Buffer.alloc(0),
  at: 0,
  next(): string {
    if (this.at + 16 > this.pool.length) {
      this.pool = randomBytes(4096);
      this.at = 0;
    }
    const hex = this.pool.toString("hex", this.at, this.at + 16);
    this.at += 16;
    return hex;
  },
};

/** Same declaration, same fingerprint: the canonical form, so key order in the JSON does not matter. */
function fingerprint(d: UploadDeclaration, expiresIn: unknown, method: string): string {
  const metadata = Object.fromEntries(Object.entries(d.metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  // The method is part of the request: a retry that asks for a form POST where the first
  // asked for a PUT is another request (409), not a replay. Named only when it is not the
  // default, so the fingerprints of keys recorded before it was included stay the same.
  const fields: unknown[] = [d.filename, d.contentType, d.size, d.sha256 ?? null, d.md5 ?? null, metadata, expiresIn ?? null];
  if (method !== "PUT") fields.push(method);
  const canonical = JSON.stringify(fields);
  return createHash("sha256").update(canonical).digest("hex");
}

function encodeCursor(c: { createdAt: number; id: string }): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id])).toString("base64url");
}

function decodeCursor(raw: string): { createdAt: number; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as [unknown, unknown];
    if (Number.isSafeInteger(createdAt) && typeof id === "string" && UPLOAD_ID.test(id)) return { createdAt: createdAt as number, id };
  } catch {
    // fall through
  }
  throw new InvalidRequestError("invalid_cursor", "cursor is not one this API returned");
}
