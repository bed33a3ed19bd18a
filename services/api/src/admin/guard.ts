import { timingSafeEqual } from "node:crypto";
import type { Context, Middleware, Next } from "koa";
import type { AdminSessionRepository } from "@intake/db";
import { can, ForbiddenError, UnauthenticatedError, type AdminPrincipal, type Permission } from "@intake/domain";
import { HttpError } from "../http/errors.ts";
import { readForm } from "./form.ts";

/** The admin session cookie: HttpOnly, SameSite=Strict, Secure behind TLS (see sessionCookie). */
export const SESSION_COOKIE = "intake_admin";
/** Form field and header that carry the session's CSRF token. */
export const CSRF_FIELD = "_csrf";
export const CSRF_HEADER = "x-csrf-token";

/** What a guarded admin route finds on ctx.state. */
export interface AdminState {
  admin: AdminPrincipal;
  csrfToken: string;
  /** A urlencoded form body, already read (the CSRF check needs it first). */
  form?: URLSearchParams;
}

export interface AdminGuard {
  /**
   * Refuses tenant API keys and anonymous requests (401, or a redirect to the sign-in page
   * for a page), principals without the permission (403), and a state-changing request
   * (anything but GET, HEAD, OPTIONS) without the session's CSRF token or from another
   * origin. Every admin route goes through it: CSRF is not something a route can forget.
   */
  require(permission: Permission, opts?: { page?: boolean }): Middleware;
  /** The signed-in principal, if any, without refusing anyone (the sign-in page itself). */
  optional(): Middleware;
}

export interface GuardOptions {
  sessions: AdminSessionRepository;
  idleSeconds: number;
  formLimitBytes: number;
  now?: () => Date;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function adminGuard(o: GuardOptions): AdminGuard {
  const now = o.now ?? (() => new Date());

  async function sessionOf(ctx: Context) {
    const token = ctx.cookies.get(SESSION_COOKIE);
    return token ? o.sessions.resolve(token, o.idleSeconds, now()) : null;
  }

  return {
    require(permission, opts = {}) {
      return async (ctx: Context, next: Next) => {
        // A tenant's key never opens an admin route, whatever else the request carries.
        if (ctx.get("Authorization")) throw new ForbiddenError("api_key_not_allowed", "tenant API keys cannot use admin routes; sign in at /admin/login");
        const session = await sessionOf(ctx);
        if (!session) {
          if (opts.page && SAFE_METHODS.has(ctx.method)) {
            ctx.status = 303;
            ctx.redirect(`/admin/login?next=${encodeURIComponent(ctx.originalUrl.slice(0, 500))}`);
            return;
          }
          throw new UnauthenticatedError("an admin session is required: sign in at /admin/login");
        }
        if (!can(session.principal, permission)) throw new ForbiddenError("forbidden", `the ${session.principal.role} role may not do this (${permission})`);
        const state = ctx.state as AdminState;
        state.admin = session.principal;
        state.csrfToken = session.csrfToken;
        if (!SAFE_METHODS.has(ctx.method)) await checkCsrf(ctx, session.csrfToken, o.formLimitBytes);
        ctx.set("Cache-Control", "no-store");
        await next();
      };
    },
    optional() {
      return async (ctx: Context, next: Next) => {
        const session = ctx.get("Authorization") ? null : await sessionOf(ctx);
        if (session) {
          const state = ctx.state as AdminState;
          state.admin = session.principal;
          state.csrfToken = session.csrfToken;
        }
        await next();
      };
    },
  };
}

/**
 * Two checks. The browser's own word on where the request came from (Sec-Fetch-Site, else
 * Origin) must be this site; and the request must carry the session's token, in the header
 * (scripts) or the form's hidden field (pages that work without JavaScript). SameSite=Strict
 * already keeps the cookie off cross-site requests; this holds where it does not (old
 * browsers, a sibling subdomain).
 */
async function checkCsrf(ctx: Context, expected: string, formLimitBytes: number): Promise<void> {
  const site = ctx.get("Sec-Fetch-Site");
  if (site && site !== "same-origin" && site !== "none") throw csrfError("the request came from another site");
  const origin = ctx.get("Origin");
  if (!site && origin && origin !== ctx.origin) throw csrfError("the request came from another origin");
  let presented = ctx.get(CSRF_HEADER);
  if (!presented && ctx.is("application/x-www-form-urlencoded")) {
    const form = await readForm(ctx.req, formLimitBytes);
    (ctx.state as AdminState).form = form;
    presented = form.get(CSRF_FIELD) ?? "";
  }
  if (!presented || !sameToken(presented, expected)) throw csrfError("the CSRF token is missing or wrong; reload the page and try again");
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function csrfError(why: string): HttpError {
  return new HttpError(403, "csrf_failed", why);
}
