import { randomUUID } from "node:crypto";
import type { Context, Next } from "koa";
import type { Logger } from "@intake/runtime";
import { routeOf } from "./errors.ts";
import type { Caller } from "./auth.ts";

/**
 * One line per request: method, route pattern, status, duration, tenant. Deliberately not
 * the URL's query string, any header, or any body: the Authorization header is a key, and
 * response bodies hold presigned URLs, which are bearer credentials until they expire.
 * The logger also scrubs secrets, but what is never passed to it cannot leak.
 */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function requestLog(logger: Logger) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    const started = process.hrtime.bigint();
    const presented = ctx.get("x-request-id");
    const requestId = REQUEST_ID.test(presented) ? presented : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set("X-Request-Id", requestId);
    try {
      await next();
    } finally {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const caller = ctx.state.caller as Caller | undefined;
      const status = ctx.status;
      const line = {
        requestId,
        method: ctx.method,
        route: routeOf(ctx),
        status,
        durationMs: Math.round(durationMs * 100) / 100,
        tenant: caller?.tenantId,
      };
      if (status >= 500) logger.error(line, "request");
      else if (ctx.path === "/healthz" || ctx.path === "/readyz") logger.debug(line, "request");
      else logger.info(line, "request");
    }
  };
}
