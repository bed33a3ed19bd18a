import type { Context } from "koa";
import type { Router } from "@koa/router";
import {
  COMPLETE_UPLOAD_ERRORS,
  CompleteUpload,
  CREATE_UPLOAD_ERRORS,
  CreateUpload,
  GET_UPLOAD_ERRORS,
  GetUploadQuery,
  LIST_UPLOADS_ERRORS,
  ListUploadsQuery,
  SIGN_PARTS_ERRORS,
  SignParts,
} from "@intake/contract";
import { callerOf } from "../http/auth.ts";
import { checkShape, readBody } from "../http/request-shape.ts";
import type { PresignedRequest } from "@intake/storage";
import type { CreateResult, UploadService } from "../upload-service.ts";
import { uploadView, type Upload } from "@intake/domain";
import { waitUntilTerminal } from "../upload-wait.ts";

/**
 * /v1/uploads: thin handlers. Each reads and shape-checks the request, calls one use case
 * and writes the response. Presigned URLs appear in response bodies (create, parts) and in
 * the download redirect only, with Cache-Control: no-store: they are bearer credentials.
 * Shapes are the contract's (@intake/contract), checked here; the policy is the domain's.
 */
export function mountUploadRoutes(router: Router, uploads: UploadService, bodyLimitBytes: number): void {
  router.post("/v1/uploads", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const input = await readBody(ctx.req, bodyLimitBytes, CreateUpload, CREATE_UPLOAD_ERRORS);
    const idempotencyKey = ctx.get("idempotency-key") || undefined;
    const result = await uploads.create(tenantId, input, idempotencyKey);
    noStore(ctx);
    if (result.replayed) ctx.set("Idempotent-Replayed", "true");
    ctx.status = result.replayed ? 200 : 201;
    ctx.set("Location", `/v1/uploads/${result.upload.id}`);
    ctx.body = createResponse(result);
  });

  router.get("/v1/uploads", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const page = await uploads.list(tenantId, listQuery(ctx));
    ctx.body = { items: page.items.map(uploadView), nextCursor: page.nextCursor };
  });

  router.get("/v1/uploads/:id", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const id = ctx.params.id!;
    const waitSeconds = getQuery(ctx).wait ?? 0;
    const read = () => uploads.get(tenantId, id);
    ctx.body = { upload: uploadView(await longPoll(ctx, read, await read(), waitSeconds)) };
  });

  router.post("/v1/uploads/:id/parts", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const input = await readBody(ctx.req, bodyLimitBytes, SignParts, SIGN_PARTS_ERRORS);
    const parts = await uploads.signParts(tenantId, ctx.params.id!, input);
    noStore(ctx);
    ctx.body = { parts: parts.map((p) => ({ partNumber: p.partNumber, size: p.size, ...presigned(p) })) };
  });

  router.get("/v1/uploads/:id/parts", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const parts = await uploads.listParts(tenantId, ctx.params.id!);
    ctx.body = { parts: parts.map((p) => ({ partNumber: p.partNumber, size: p.size, etag: p.eTag })) };
  });

  router.post("/v1/uploads/:id/complete", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const input = await readBody(ctx.req, bodyLimitBytes, CompleteUpload, COMPLETE_UPLOAD_ERRORS);
    ctx.body = { upload: uploadView(await uploads.complete(tenantId, ctx.params.id!, input)) };
  });

  router.delete("/v1/uploads/:id", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    ctx.body = { upload: uploadView(await uploads.abort(tenantId, ctx.params.id!)) };
  });

  router.get("/v1/uploads/:id/download", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const request = await uploads.download(tenantId, ctx.params.id!);
    noStore(ctx);
    // The storage response carries the attachment disposition and the verified type
    // (response-content-* parameters, bound by the signature); nosniff here covers the
    // redirect itself and clients that render it.
    ctx.set("X-Content-Type-Options", "nosniff");
    ctx.set("Referrer-Policy", "no-referrer");
    ctx.status = 302;
    ctx.set("Location", request.url);
    ctx.body = { url: request.url, expiresAt: request.expiresAt.toISOString() };
  });
}

export function createResponse(r: CreateResult) {
  if (r.kind === "single") {
    const request = r.request;
    // A form upload: POST `url` as multipart/form-data with every field, then the file.
    if (request.method === "POST") return { upload: uploadView(r.upload), kind: "single", method: "POST", url: request.url, fields: request.fields, expiresAt: request.expiresAt.toISOString() };
    return { upload: uploadView(r.upload), kind: "single", ...presigned(request) };
  }
  return {
    upload: uploadView(r.upload),
    kind: "multipart",
    uploadId: r.upload.id,
    partSize: r.partSize,
    partCount: r.partCount,
    expiresAt: r.expiresAt.toISOString(),
  };
}

export function presigned(p: PresignedRequest) {
  return { method: p.method, url: p.url, headers: p.headers, expiresAt: p.expiresAt.toISOString() };
}

function noStore(ctx: Context): void {
  // Responses with presigned URLs must not sit in shared or browser caches.
  ctx.set("Cache-Control", "no-store");
}

/** GET /v1/uploads's query (status, limit, cursor; any other parameter is refused). */
export function listQuery(ctx: Context) {
  return checkShape(ListUploadsQuery, queryOf(ctx), LIST_UPLOADS_ERRORS, "query");
}

/** GET /v1/uploads/:id's query (wait). */
export function getQuery(ctx: Context) {
  return checkShape(GetUploadQuery, queryOf(ctx), GET_UPLOAD_ERRORS, "query");
}

/** The query as the contract sees it: an empty value is no value (?wait= is no wait). A repeated parameter stays an array and is refused. */
function queryOf(ctx: Context): Record<string, unknown> {
  return Object.fromEntries(Object.entries(ctx.query).filter(([, v]) => v !== undefined && v !== ""));
}

/**
 * GET /v1/uploads/:id?wait=: the upload held until its status is terminal or the wait ends
 * (upload-wait.ts); a client that disconnects first ends the wait (the response's close
 * before it finished). Shared by the API key's route and a session's.
 */
export async function longPoll(ctx: Context, read: () => Promise<Upload>, first: Upload, waitSeconds: number): Promise<Upload> {
  if (waitSeconds <= 0) return first;
  const gone = new AbortController();
  const onClose = () => {
    if (!ctx.res.writableFinished) gone.abort();
  };
  ctx.res.once("close", onClose);
  try {
    return await waitUntilTerminal(read, first, { seconds: waitSeconds, signal: gone.signal });
  } finally {
    ctx.res.off("close", onClose);
  }
}
