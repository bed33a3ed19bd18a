import type { Context, Next } from "koa";
import { HttpError } from "./errors.ts";

/**
 * CORS for the configured origins only (exact match; no wildcard, because the API takes
 * bearer keys and a wildcard would let any page drive it with a key it got hold of).
 * Requests from other origins get no CORS headers, so browsers refuse to hand the response
 * to the page; their preflights are answered 403 so the reason is visible in dev tools.
 */
const ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS";
const ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key";
const EXPOSED_HEADERS = "Location, X-Request-Id, Idempotent-Replayed, Retry-After";

export function cors(origins: readonly string[]) {
  const allowed = new Set(origins.map((o) => o.replace(/\/+$/, "").toLowerCase()));
  return async function corsHeaders(ctx: Context, next: Next): Promise<void> {
    const origin = ctx.get("origin");
    ctx.vary("Origin");
    if (!origin) return next();
    const ok = allowed.has(origin.toLowerCase());
    const preflight = ctx.method === "OPTIONS" && ctx.get("access-control-request-method") !== "";
    if (preflight) {
      if (!ok) throw new HttpError(403, "cors_origin_not_allowed", "this origin is not allowed to call the API", { origin: origin.slice(0, 200) });
      ctx.set("Access-Control-Allow-Origin", origin);
      ctx.set("Access-Control-Allow-Methods", ALLOWED_METHODS);
      ctx.set("Access-Control-Allow-Headers", ALLOWED_HEADERS);
      ctx.set("Access-Control-Max-Age", "600");
      ctx.status = 204;
      return;
    }
    if (ok) {
      ctx.set("Access-Control-Allow-Origin", origin);
      ctx.set("Access-Control-Expose-Headers", EXPOSED_HEADERS);
    }
    await next();
  };
}
