import type { Context, Middleware, Next } from "koa";
import { Router } from "@koa/router";
import { ConflictError, ForbiddenError, InvalidRequestError, LimitExceededError } from "@intake/domain";
import { uploaderOf } from "../http/auth.ts";
import { errorResponse } from "../http/errors.ts";
import { readJsonObject, rejectUnknownFields } from "../http/json-body.ts";
import type { CreateInput } from "../upload-service.ts";
import type { SessionGrant, UploadSessions } from "../sessions/upload-sessions.ts";
import { uploadView } from "@intake/domain";

/**
 * Companion-style routes for @uppy/aws-s3 6.x (option companionEndpoint), under
 * /v1/uppy/{sessionToken}. Uppy sends no custom headers and no cookies, so the upload
 * session's token is the path's first segment; every call is the same UploadService use
 * case the tenant API runs, authorised by that session (its limits and budget apply).
 *
 * What Uppy calls (node_modules/@uppy/aws-s3/src/s3-client/CompanionS3.ts):
 * - GET  s3/params?filename&type&metadata[k]=v  -> {url, fields}: a presigned POST (6.x posts
 *   single files as multipart/form-data and reads fields.key);
 * - POST s3/multipart {filename, type, metadata} -> {key, uploadId};
 * - GET  s3/multipart/:uploadId/:partNumber?key= -> {url} (Uppy PUTs the part with no
 *   Content-Type and reads its ETag);
 * - GET  s3/multipart/:uploadId?key= -> [{PartNumber, ETag, Size}] (resume only);
 * - POST s3/multipart/:uploadId/complete?key= {parts:[{PartNumber, ETag}]} -> {location, key};
 * - DELETE s3/multipart/:uploadId?key= -> {} (cancel only).
 *
 * The uploadId Uppy holds is our upload id, not storage's multipart UploadId (that one stays
 * on the server): every call finds the upload by id within the session, and the key Uppy
 * echoes must be that upload's object key, or the call is refused (key_mismatch).
 *
 * Uppy reports a failed call as "Companion request failed: <statusText>" and drops the body,
 * so errors here carry the error's code and message in the HTTP reason phrase as well.
 *
 * The size: Uppy sends none of its own, and picks form POST or multipart by its own rule
 * (100 MiB by default) with parts of its own size (5 MiB at least). So an upload created here
 * without a size has its size learned on arrival (@intake/domain upload-size.ts): created
 * with a size limit (the per-file maximum, the session's remaining budget, 5 GiB for a POST),
 * which the POST policy's content-length-range [1, limit] and the number of part URLs that
 * may be signed enforce, and which the quotas and the session reserve until the object's real
 * size is recorded. Uppy's choice of method is taken as it is. A page that does send
 * metadata[size] gets today's exact binding instead (stronger: every URL pinned to that size),
 * and then the method must match the size (not_a_form_upload, multipart_too_small).
 */

/** The session use cases the routes call (sessions/upload-sessions.ts). */
export type UppySessions = Pick<UploadSessions, "create" | "createWithoutSize" | "signParts" | "listParts" | "complete" | "abort" | "get">;

export interface UppyRouterOptions {
  sessions: UppySessions;
  /**
   * The API's own authentication (http/auth.ts requireApiKey, the same instance): the path's
   * token is presented to it as a Bearer credential, so the failed-authentication limits,
   * request budgets and logging are those of every other route.
   */
  authenticate: Middleware;
  bodyLimitBytes: number;
}

/** Uppy's own file meta, which the declaration carries elsewhere (filename, type, size) or not at all. */
const UPPY_META = new Set(["name", "type", "size", "relativePath"]);
const MULTIPART_FIELDS = ["filename", "type", "metadata"] as const;
const COMPLETE_FIELDS = ["parts"] as const;

export function createUppyRouter(o: UppyRouterOptions): Router {
  const { sessions: uploads, bodyLimitBytes } = o;
  const router = new Router({ prefix: "/v1/uppy/:token" });
  router.use(uppyErrors);
  router.use(async (ctx, next) => {
    ctx.req.headers.authorization = `Bearer ${ctx.params.token}`;
    await o.authenticate(ctx, next);
  });

  router.get("/s3/params", async (ctx) => {
    const q = ctx.query;
    const metadata = Object.fromEntries(
      Object.entries(q)
        .map(([k, v]) => [/^metadata\[(.+)\]$/.exec(k)?.[1], Array.isArray(v) ? v[0] : v] as const)
        .filter((e): e is readonly [string, string] => e[0] !== undefined && typeof e[1] === "string"),
    );
    const d = declaration(single(q.filename), single(q.type), metadata, "POST");
    const result = d.size === undefined ? await uploads.createWithoutSize(sessionOf(ctx), d, "form") : await uploads.create(sessionOf(ctx), d);
    if (result.kind !== "single" || result.request.method !== "POST" || !("fields" in result.request)) {
      throw new ConflictError("not_a_form_upload", "this file gets a multipart upload; let Uppy use multipart for it (shouldUseMultipart)");
    }
    noStore(ctx);
    ctx.body = { method: "POST", url: result.request.url, fields: result.request.fields, expires: result.request.expiresAt.toISOString() };
  });

  router.post("/s3/multipart", async (ctx) => {
    const body = await readJsonObject(ctx.req, bodyLimitBytes);
    rejectUnknownFields(body, MULTIPART_FIELDS);
    const metadata = body.metadata === undefined ? {} : body.metadata;
    if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) throw new InvalidRequestError("invalid_metadata", "metadata must be an object");
    const d = declaration(body.filename, body.type, metadata as Record<string, unknown>);
    const result = d.size === undefined ? await uploads.createWithoutSize(sessionOf(ctx), d, "multipart") : await uploads.create(sessionOf(ctx), d);
    if (result.kind !== "multipart") {
      // Declared but too small for parts: give the session its file back rather than leave a pending upload.
      await uploads.abort(sessionOf(ctx), result.upload.id).catch(() => undefined);
      throw new InvalidRequestError("multipart_too_small", "this file is small enough for a single upload; let Uppy post it as a form (shouldUseMultipart)");
    }
    noStore(ctx);
    ctx.body = { key: result.upload.objectKey, uploadId: result.upload.id };
  });

  router.get("/s3/multipart/:uploadId/:partNumber", async (ctx) => {
    const id = await matchingUpload(ctx, uploads);
    const partNumber = Number(ctx.params.partNumber);
    if (!Number.isInteger(partNumber) || String(partNumber) !== ctx.params.partNumber) throw new InvalidRequestError("invalid_part_numbers", "the part number must be a positive integer");
    const [part] = await uploads.signParts(sessionOf(ctx), id, { partNumbers: [partNumber] });
    if (part!.headers && Object.keys(part!.headers).some((h) => h.toLowerCase() !== "content-length")) {
      // Uppy sends no header of ours: a URL that needs one would fail at storage.
      throw new ConflictError("part_needs_headers", "this upload's part URLs require headers Uppy cannot send");
    }
    noStore(ctx);
    ctx.body = { url: part!.url, expires: part!.expiresAt.toISOString() };
  });

  router.get("/s3/multipart/:uploadId", async (ctx) => {
    const id = await matchingUpload(ctx, uploads);
    const parts = await uploads.listParts(sessionOf(ctx), id);
    ctx.body = parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.eTag, Size: p.size }));
  });

  router.post("/s3/multipart/:uploadId/complete", async (ctx) => {
    const id = await matchingUpload(ctx, uploads);
    const body = await readJsonObject(ctx.req, bodyLimitBytes);
    rejectUnknownFields(body, COMPLETE_FIELDS);
    const upload = await uploads.complete(sessionOf(ctx), id, { parts: uppyParts(body.parts) });
    // Location: where the object was stored; the upload itself is read from the API, and
    // its bytes only once verified (GET /v1/uploads/:id/download with the application's key).
    ctx.body = { location: `/v1/uploads/${upload.id}`, key: upload.objectKey, upload: uploadView(upload) };
  });

  router.delete("/s3/multipart/:uploadId", async (ctx) => {
    const id = await matchingUpload(ctx, uploads);
    await uploads.abort(sessionOf(ctx), id);
    ctx.body = {};
  });

  return router;
}

/**
 * Uppy's {filename, type, metadata} as our declaration, Uppy's own meta dropped: with the size
 * from metadata.size when the page sent one (exact binding), else without a size (learned on
 * arrival). A size that is there but malformed is refused, never taken for none.
 */
function declaration(filename: unknown, type: unknown, metadata: Record<string, unknown>, method?: "POST"): CreateInput & { size?: number } {
  const rest = Object.fromEntries(Object.entries(metadata).filter(([k]) => !UPPY_META.has(k)));
  const raw = metadata.size;
  if (raw === undefined) return { filename, contentType: type, metadata: rest };
  const size = typeof raw === "number" ? raw : typeof raw === "string" && /^[0-9]{1,16}$/.test(raw) ? Number(raw) : undefined;
  if (size === undefined) throw new InvalidRequestError("invalid_size", "metadata[size], when sent, must be the file's size in bytes (or leave it out: the size is then learned on arrival)");
  return { filename, contentType: type, size, metadata: rest, ...(method ? { method } : {}) };
}

/** The upload id Uppy names, once its key is that upload's object key. */
async function matchingUpload(ctx: Context, uploads: UppySessions): Promise<string> {
  const id = ctx.params.uploadId!;
  const key = single(ctx.query.key);
  if (typeof key !== "string" || key === "") throw new InvalidRequestError("key_required", "the key query parameter is required");
  const upload = await uploads.get(sessionOf(ctx), id);
  if (upload.objectKey !== key) throw new InvalidRequestError("key_mismatch", "key is not the key of this upload", { uploadId: upload.id });
  return upload.id;
}

/** Uppy's parts ({PartNumber, ETag}) in our shape; their checks are the service's. */
function uppyParts(raw: unknown): { partNumber: number; etag: string }[] {
  if (!Array.isArray(raw)) throw new InvalidRequestError("invalid_parts", "parts must be an array of {PartNumber, ETag}");
  return raw.map((p: unknown) => {
    if (typeof p !== "object" || p === null) throw new InvalidRequestError("invalid_parts", "each part must be an object {PartNumber, ETag}");
    const { PartNumber, ETag } = p as { PartNumber?: unknown; ETag?: unknown };
    return { partNumber: PartNumber as number, etag: ETag as string };
  });
}

/** The session the path's token proved; an API key there is refused: it must never sit in a URL. */
function sessionOf(ctx: Context): SessionGrant {
  const session = uploaderOf(ctx).session;
  if (!session) throw new ForbiddenError("session_required", "the Uppy routes take an upload session token (POST /v1/upload-sessions), never the API key");
  return session;
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function noStore(ctx: Context): void {
  // Presigned URLs are bearer credentials: never in a cache.
  ctx.set("Cache-Control", "no-store");
}

/**
 * Our error body, and the code and message in the reason phrase too: Uppy shows only the
 * status text. 500s go on to the error middleware, which logs them and says nothing more.
 * CORS headers were set before (cors.ts runs first), so the page can read the answer.
 */
async function uppyErrors(ctx: Context, next: Next): Promise<void> {
  try {
    await next();
  } catch (err) {
    const { status, body } = errorResponse(err);
    if (status >= 500) throw err;
    ctx.status = status;
    ctx.message = reasonPhrase(`${body.error.code}: ${body.error.message}`);
    ctx.body = body;
    if (err instanceof LimitExceededError && err.retryAfterSeconds !== undefined) ctx.set("Retry-After", String(err.retryAfterSeconds));
  }
}

/** A reason phrase is visible ASCII and spaces only (RFC 9112 section 4); kept short. */
export function reasonPhrase(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, "?").slice(0, 160);
}
