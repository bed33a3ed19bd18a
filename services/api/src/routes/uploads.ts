import type { Context } from "koa";
import type { Router } from "@koa/router";
import { callerOf } from "../http/auth.ts";
import { readJsonObject, rejectUnknownFields } from "../http/json-body.ts";
import type { PresignedRequest } from "@intake/storage";
import type { CreateResult, UploadService } from "../upload-service.ts";
import { uploadView } from "@intake/domain";
import { parseWaitSeconds, waitUntilTerminal } from "../upload-wait.ts";

/**
 * /v1/uploads: thin handlers. Each reads and shape-checks the request, calls one use case
 * and writes the response. Presigned URLs appear in response bodies (create, parts) and in
 * the download redirect only, with Cache-Control: no-store: they are bearer credentials.
 */
export const CREATE_FIELDS = ["filename", "contentType", "size", "sha256", "md5", "metadata", "expiresIn", "method"] as const;
export const PARTS_FIELDS = ["partNumbers", "parts", "expiresIn"] as const;
export const COMPLETE_FIELDS = ["parts"] as const;

export function mountUploadRoutes(router: Router, uploads: UploadService, bodyLimitBytes: number): void {
  const body = async (ctx: Context, allowed: readonly string[]) => {
    const json = await readJsonObject(ctx.req, bodyLimitBytes);
    rejectUnknownFields(json, allowed);
    return json;
  };

  router.post("/v1/uploads", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const input = await body(ctx, CREATE_FIELDS);
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
    const page = await uploads.list(tenantId, {
      status: queryParam(ctx, "status"),
      limit: queryParam(ctx, "limit"),
      cursor: queryParam(ctx, "cursor"),
    });
    ctx.body = { items: page.items.map(uploadView), nextCursor: page.nextCursor };
  });

  router.get("/v1/uploads/:id", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const id = ctx.params.id!;
    const waitSeconds = parseWaitSeconds(queryParam(ctx, "wait"));
    let upload = await uploads.get(tenantId, id);
    if (waitSeconds > 0) {
      // Long-poll: held until the status is terminal or the wait ends; a client that
      // disconnects first ends the wait (the response's close before it finished).
      const gone = new AbortController();
      const onClose = () => {
        if (!ctx.res.writableFinished) gone.abort();
      };
      ctx.res.once("close", onClose);
      try {
        upload = await waitUntilTerminal(() => uploads.get(tenantId, id), upload, { seconds: waitSeconds, signal: gone.signal });
      } finally {
        ctx.res.off("close", onClose);
      }
    }
    ctx.body = { upload: uploadView(upload) };
  });

  router.post("/v1/uploads/:id/parts", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const input = await body(ctx, PARTS_FIELDS);
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
    const input = await body(ctx, COMPLETE_FIELDS);
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

function queryParam(ctx: Context, name: string): string | undefined {
  const v = ctx.query[name];
  if (Array.isArray(v)) return v[0];
  return v === undefined || v === "" ? undefined : v;
}
