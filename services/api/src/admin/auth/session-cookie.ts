import type { Context } from "koa";
import type { Config } from "@intake/runtime";
import { SESSION_COOKIE } from "../guard.ts";

/**
 * The admin session cookie. SameSite=Strict: the browser never sends it on a request another
 * site started, so a cross-site form or link cannot act as the admin (the CSRF token is the
 * second lock). That also means it is not sent on the first request after the identity
 * provider's redirect back (a cross-site navigation), which is why the OIDC callback hands
 * over to the next page with a same-site step (see oidc.ts). Secure when the deployment says
 * it is behind TLS (ADMIN_COOKIE_SECURE, or a PUBLIC_URL in https).
 */
export function setSessionCookie(ctx: Context, config: Config, token: string, expiresAt: Date): void {
  const secure = config.admin.cookieSecure;
  // Koa refuses to write a Secure cookie on a request it believes is plain http (no TLS, no
  // trusted X-Forwarded-Proto). The deployment said it is behind TLS: the browser decides.
  if (secure) ctx.cookies.secure = true;
  ctx.cookies.set(SESSION_COOKIE, token, { httpOnly: true, sameSite: "strict", secure, path: "/", expires: expiresAt, overwrite: true });
}

export function clearSessionCookie(ctx: Context, config: Config): void {
  if (config.admin.cookieSecure) ctx.cookies.secure = true;
  ctx.cookies.set(SESSION_COOKIE, "", { httpOnly: true, sameSite: "strict", secure: config.admin.cookieSecure, path: "/", maxAge: 0, expires: new Date(0), overwrite: true });
}

export const DEFAULT_LANDING = "/admin";

/**
 * Where to go after signing in: a path on this site, or the admin home. Only a path that
 * starts with one "/" (not "//" or "/\", which browsers read as another host), has no
 * control characters or spaces, and is still such a path on this origin once the URL parser
 * has resolved its dot segments: `next` comes from the query string, so anything else would
 * make the sign-in page an open redirect.
 */
export function safeNext(next: unknown): string {
  if (typeof next !== "string" || next.length === 0 || next.length > 500) return DEFAULT_LANDING;
  if (!/^\/(?![/\\])/.test(next) || /[\u0000-\u0020\u007f\\]/.test(next)) return DEFAULT_LANDING;
  const base = "http://intake.invalid";
  try {
    const u = new URL(next, base);
    if (u.origin !== base) return DEFAULT_LANDING;
    // Checked again after the URL parser's own normalisation: "/.//evil.example" and
    // "/a/..//evil.example" resolve to the path "//evil.example", which a browser given it
    // as a Location reads as another host.
    const path = u.pathname + u.search + u.hash;
    return /^\/(?![/\\])/.test(path) ? path : DEFAULT_LANDING;
  } catch {
    return DEFAULT_LANDING;
  }
}
