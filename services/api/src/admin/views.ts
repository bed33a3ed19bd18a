import { fileURLToPath } from "node:url";
import { Eta } from "eta";
import type { Context, Next } from "koa";
import { LimitExceededError } from "@intake/domain";
import type { Logger } from "@intake/runtime";
import { errorResponse, routeOf } from "../http/errors.ts";
import type { AdminState } from "./guard.ts";

/**
 * Server-rendered admin pages: Eta templates in ./views, auto-escaping every <%= %> (raw
 * output, <%~ %>, is for markup we built ourselves, such as the SVG charts). Pages work
 * without client-side JavaScript: forms post with a hidden CSRF field.
 */
export interface Views {
  render(ctx: Context, template: string, data?: Record<string, unknown>, status?: number): void;
}

const VIEWS_DIR = fileURLToPath(new URL("./views", import.meta.url));

/** No scripts on our pages; styles inline in the layout; forms post only to us; never framed. */
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export function createViews(opts: { cache: boolean }): Views {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: opts.cache, autoTrim: false });
  return {
    render(ctx, template, data = {}, status = 200) {
      const state = ctx.state as Partial<AdminState>;
      const html = eta.render(template, { admin: state.admin ?? null, csrfToken: state.csrfToken ?? "", path: ctx.path, ...data });
      ctx.status = status;
      ctx.type = "text/html; charset=utf-8";
      ctx.set("Content-Security-Policy", PAGE_CSP);
      ctx.set("Cache-Control", "no-store");
      ctx.body = html;
    },
  };
}

/**
 * A refusal on an admin page, for a browser (Accept: text/html), as a page with the reason
 * rather than a JSON error body; scripts (JSON under /v1/admin, curl) keep the JSON errors
 * of errorMiddleware. Unexpected failures are logged here as errorMiddleware would.
 */
export function adminPageErrors(views: Views, logger: Logger) {
  return async function renderPageErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      if (!(ctx.path === "/admin" || ctx.path.startsWith("/admin/")) || !ctx.get("Accept").includes("text/html")) throw err;
      const { status, body } = errorResponse(err);
      if (status >= 500 && status !== 503) logger.error({ err, requestId: ctx.state.requestId, route: routeOf(ctx) }, "request failed");
      if (err instanceof LimitExceededError && err.retryAfterSeconds !== undefined) ctx.set("Retry-After", String(err.retryAfterSeconds));
      const signIn = status === 401 ? "/admin/login" : undefined;
      views.render(ctx, "error", { title: status === 403 ? "Not allowed" : status === 401 ? "Sign in first" : "Error", status, code: body.error.code, message: body.error.message, ...(signIn ? { retry: signIn } : {}) }, status);
    }
  };
}
