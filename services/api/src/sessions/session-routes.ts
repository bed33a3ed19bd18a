import type { Context, Next } from "koa";
import type { Router } from "@koa/router";
import { uploadView } from "@intake/domain";
import {
  COMPLETE_UPLOAD_ERRORS,
  CompleteUpload,
  CREATE_UPLOAD_ERRORS,
  CREATE_UPLOAD_SESSION_ERRORS,
  CreateUpload,
  CreateUploadSession,
  SIGN_PARTS_ERRORS,
  SignParts,
} from "@intake/contract";
import { callerOf, uploaderOf } from "../http/auth.ts";
import { readBody } from "../http/request-shape.ts";
import { createResponse, getQuery, longPoll, presigned } from "../routes/uploads.ts";
import type { SessionGrant, UploadSessions } from "./upload-sessions.ts";

/**
 * /v1/upload-sessions (API key only): mint and revoke. And the /v1/uploads routes a session
 * token may use, mounted before the API key's handlers of the same paths: a session caller is
 * answered here, scoped to its own uploads; any other caller falls through (next) to them.
 * Every other route refuses a session (callerOf: 403 session_not_allowed).
 */
export function mountSessionRoutes(router: Router, sessions: UploadSessions, bodyLimitBytes: number): void {
  router.post("/v1/upload-sessions", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    const minted = await sessions.mint(tenantId, await readBody(ctx.req, bodyLimitBytes, CreateUploadSession, CREATE_UPLOAD_SESSION_ERRORS));
    // The token is a bearer credential: shown once, never cached.
    ctx.set("Cache-Control", "no-store");
    ctx.status = 201;
    ctx.set("Location", `/v1/upload-sessions/${minted.session.id}`);
    ctx.body = { token: minted.token, expiresAt: minted.expiresAt.toISOString(), session: minted.session };
  });

  router.delete("/v1/upload-sessions/:id", async (ctx) => {
    const { tenantId } = callerOf(ctx);
    ctx.body = { session: await sessions.revoke(tenantId, ctx.params.id!) };
  });

  /** The handler for a session caller; others go on to the API key's handler of the same route. */
  const forSession = (handle: (ctx: Context, session: SessionGrant) => Promise<void>) => async (ctx: Context, next: Next) => {
    const session = uploaderOf(ctx).session;
    if (!session) return next();
    await handle(ctx, session);
  };

  router.post(
    "/v1/uploads",
    forSession(async (ctx, session) => {
      const input = await readBody(ctx.req, bodyLimitBytes, CreateUpload, CREATE_UPLOAD_ERRORS);
      const result = await sessions.create(session, input, ctx.get("idempotency-key") || undefined);
      ctx.set("Cache-Control", "no-store");
      if (result.replayed) ctx.set("Idempotent-Replayed", "true");
      ctx.status = result.replayed ? 200 : 201;
      ctx.set("Location", `/v1/uploads/${result.upload.id}`);
      ctx.body = createResponse(result);
    }),
  );

  router.get(
    "/v1/uploads/:id",
    forSession(async (ctx, session) => {
      // The long-poll as for the API key: a browser's waitForVerdict (and the demo page)
      // waits for the verdict instead of polling. The token was checked when the request came
      // in; a wait is at most MAX_WAIT_SECONDS, and each read stays within the session's uploads.
      const waitSeconds = getQuery(ctx).wait ?? 0;
      const read = () => sessions.get(session, ctx.params.id!);
      ctx.body = { upload: uploadView(await longPoll(ctx, read, await read(), waitSeconds)) };
    }),
  );

  router.post(
    "/v1/uploads/:id/parts",
    forSession(async (ctx, session) => {
      const parts = await sessions.signParts(session, ctx.params.id!, await readBody(ctx.req, bodyLimitBytes, SignParts, SIGN_PARTS_ERRORS));
      ctx.set("Cache-Control", "no-store");
      ctx.body = { parts: parts.map((p) => ({ partNumber: p.partNumber, size: p.size, ...presigned(p) })) };
    }),
  );

  router.get(
    "/v1/uploads/:id/parts",
    forSession(async (ctx, session) => {
      const parts = await sessions.listParts(session, ctx.params.id!);
      ctx.body = { parts: parts.map((p) => ({ partNumber: p.partNumber, size: p.size, etag: p.eTag })) };
    }),
  );

  router.post(
    "/v1/uploads/:id/complete",
    forSession(async (ctx, session) => {
      ctx.body = { upload: uploadView(await sessions.complete(session, ctx.params.id!, await readBody(ctx.req, bodyLimitBytes, CompleteUpload, COMPLETE_UPLOAD_ERRORS))) };
    }),
  );

  router.delete(
    "/v1/uploads/:id",
    forSession(async (ctx, session) => {
      ctx.body = { upload: uploadView(await sessions.abort(session, ctx.params.id!)) };
    }),
  );
}
