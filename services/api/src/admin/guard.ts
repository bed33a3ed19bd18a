import { timingSafeEqual } from "node:crypto";
import type { Context, Middleware, Next } from "koa";
import type { AdminSessionRepository } from "@intake/db";
import { can, ForbiddenError, InvalidRequestError, UnauthenticatedError, type AdminPrincipal, type Permission } from "@intake/domain";
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

/**
 * What a guard middleware admits, stamped on the function itself so a test can walk the
 * admin router and find, for every route, the guard in front of it (and which permission).
 * "session": any signed-in admin (home page, sign-out); "public": the sign-in routes, which
 * still refuse tenant API keys.
 */
export type GuardRule = { kind: "permission"; permission: Permission } | { kind: "session" } | { kind: "public" };
export const GUARD_RULE = Symbol.for("intake.admin.guard-rule");

/** The rule of a guard middleware, or undefined for any other function. */
export function guardRuleOf(fn: unknown): GuardRule | undefined {
  return typeof fn === "function" ? (fn as { [GUARD_RULE]?: GuardRule })[GUARD_RULE] : undefined;
}

function stamped(rule: GuardRule, mw: Middleware): Middleware {
  return Object.assign(mw, { [GUARD_RULE]: rule });
}

export interface RequireOptions {
  /** Unauthenticated GETs are redirected to the sign-in page instead of answered 401. */
  page?: boolean;
  /**
   * How a state-changing request proves it is not forged. "token" (the default): the
   * session's CSRF token, and no other site's Origin/Sec-Fetch-Site. "same-origin": the
   * browser's own proof only (Sec-Fetch-Site: same-origin, or an Origin equal to ours, and
   * a request with neither is refused), for a third-party UI that cannot send our token
   * (bull-board, admin/operators/queues.ts, which says why that is enough there).
   */
  csrf?: "token" | "same-origin";
}

export interface AdminGuard {
  /**
   * Refuses tenant API keys and anonymous requests (401, or a redirect to the sign-in page
   * for a page), principals without the permission (403), and a state-changing request
   * (anything but GET, HEAD, OPTIONS) without the session's CSRF token or from another
   * origin. Every admin route goes through it: CSRF is not something a route can forget.
   */
  require(permission: Permission, opts?: RequireOptions): Middleware;
  /** As require, for anything every signed-in admin may do whatever the role (home, sign-out). */
  session(opts?: { page?: boolean }): Middleware;
  /**
   * The signed-in principal, if any, without refusing people (the sign-in routes). Tenant
   * API keys are still refused. No CSRF check: a route using it checks what it needs itself
   * (the sign-in form's pre-session token).
   */
  optional(): Middleware;
}

export interface GuardOptions {
  sessions: AdminSessionRepository;
  idleSeconds: number;
  formLimitBytes: number;
  /** PUBLIC_URL: a request whose Origin is this one is same-origin too (behind a proxy). */
  publicUrl?: string;
  now?: () => Date;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function adminGuard(o: GuardOptions): AdminGuard {
  const now = o.now ?? (() => new Date());

  async function sessionOf(ctx: Context) {
    const token = ctx.cookies.get(SESSION_COOKIE);
    return token ? o.sessions.resolve(token, o.idleSeconds, now()) : null;
  }

  function guarded(permission: Permission | null, opts: RequireOptions): Middleware {
    return async (ctx: Context, next: Next) => {
      // A tenant's key never opens an admin route, whatever else the request carries.
      refuseApiKeys(ctx);
      refuseNul(ctx);
      const session = await sessionOf(ctx);
      if (!session) {
        if (opts.page && SAFE_METHODS.has(ctx.method)) {
          ctx.status = 303;
          ctx.redirect(`/admin/login?next=${encodeURIComponent(ctx.originalUrl.slice(0, 500))}`);
          return;
        }
        throw new UnauthenticatedError("an admin session is required: sign in at /admin/login");
      }
      if (permission && !can(session.principal, permission)) throw new ForbiddenError("forbidden", `the ${session.principal.role} role may not do this (${permission})`);
      const state = ctx.state as AdminState;
      state.admin = session.principal;
      state.csrfToken = session.csrfToken;
      if (!SAFE_METHODS.has(ctx.method)) {
        if (opts.csrf === "same-origin") requireSameOriginProof(ctx, o.publicUrl);
        else await checkCsrf(ctx, session.csrfToken, o.formLimitBytes, o.publicUrl);
      }
      ctx.set("Cache-Control", "no-store");
      await next();
    };
  }

  return {
    require(permission, opts = {}) {
      return stamped({ kind: "permission", permission }, guarded(permission, opts));
    },
    session(opts = {}) {
      return stamped({ kind: "session" }, guarded(null, opts));
    },
    optional() {
      return stamped({ kind: "public" }, async (ctx: Context, next: Next) => {
        refuseApiKeys(ctx);
        refuseNul(ctx);
        const session = await sessionOf(ctx);
        if (session) {
          const state = ctx.state as AdminState;
          state.admin = session.principal;
          state.csrfToken = session.csrfToken;
        }
        ctx.set("Cache-Control", "no-store");
        await next();
      });
    },
  };
}

/**
 * A NUL in the URL (%00 in the path or the query) reaches route parameters and filters
 * decoded, and PostgreSQL refuses it in any text it is given: without this, every admin
 * route taking an id or a filter would answer such a probe with a 500.
 */
function refuseNul(ctx: Context): void {
  if (/%00/i.test(ctx.url)) throw new InvalidRequestError("nul_in_url", "the URL holds a NUL character (%00)");
}

function refuseApiKeys(ctx: Context): void {
  if (ctx.get("Authorization")) throw new ForbiddenError("api_key_not_allowed", "tenant API keys cannot use admin routes; sign in at /admin/login");
}

/**
 * Two checks. The browser's own word on where the request came from (Sec-Fetch-Site, else
 * Origin) must be this site; and the request must carry the session's token, in the header
 * (scripts) or the form's hidden field (pages that work without JavaScript). SameSite=Strict
 * already keeps the cookie off cross-site requests; this holds where it does not (old
 * browsers, a sibling subdomain).
 */
async function checkCsrf(ctx: Context, expected: string, formLimitBytes: number, publicUrl?: string): Promise<void> {
  checkSameOrigin(ctx, publicUrl);
  let presented = ctx.get(CSRF_HEADER);
  if (!presented && ctx.is("application/x-www-form-urlencoded")) {
    const form = await readForm(ctx.req, formLimitBytes);
    (ctx.state as AdminState).form = form;
    presented = form.get(CSRF_FIELD) ?? "";
  }
  if (!presented || !sameToken(presented, expected)) throw csrfError("the CSRF token is missing or wrong; reload the page and try again");
}

/**
 * The browser's word on where a state-changing request came from: Sec-Fetch-Site (sent by
 * every current browser), else Origin. Neither present (curl, old browsers): the token
 * check that follows is what holds.
 */
export function checkSameOrigin(ctx: Context, publicUrl?: string): void {
  const site = ctx.get("Sec-Fetch-Site");
  if (site && site !== "same-origin" && site !== "none") throw csrfError("the request came from another site");
  const origin = ctx.get("Origin");
  // Not ctx.origin: in Koa 3 that is the Origin header itself, which would always match.
  if (!site && origin && origin !== `${ctx.protocol}://${ctx.host}` && origin !== originOf(publicUrl)) throw csrfError("the request came from another origin");
}

/** The origin the service is published under (PUBLIC_URL), when a proxy hides it from ctx. */
function originOf(url: string | undefined): string | null {
  if (!url) return null;
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/**
 * A state-changing request the browser itself says came from one of our pages: fetch
 * metadata (Sec-Fetch-Site: same-origin; "none" is a typed URL or bookmark, never a
 * script's PUT), else an Origin equal to ours. Browsers send Origin on every cross-origin
 * request and on every same-origin one that is not GET or HEAD, so a request carrying
 * neither did not come from a current browser's page and is refused.
 */
export function requireSameOriginProof(ctx: Context, publicUrl?: string): void {
  const site = ctx.get("Sec-Fetch-Site");
  if (site) {
    if (site !== "same-origin") throw csrfError("the request came from another site");
    return;
  }
  const origin = ctx.get("Origin");
  if (!origin) throw csrfError("the request carries no proof of its origin (Origin or Sec-Fetch-Site)");
  // Not ctx.origin (the Origin header itself in Koa 3), as in checkSameOrigin.
  if (origin !== `${ctx.protocol}://${ctx.host}` && origin !== originOf(publicUrl)) throw csrfError("the request came from another origin");
}

export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function csrfError(why: string): HttpError {
  return new HttpError(403, "csrf_failed", why);
}
