import { randomBytes } from "node:crypto";
import type { Context } from "koa";
import type { Router } from "@koa/router";
import { LimitExceededError } from "@intake/domain";
import { errorResponse } from "../../http/errors.ts";
import { readForm } from "../form.ts";
import { checkSameOrigin, csrfError, CSRF_FIELD, sameToken, SESSION_COOKIE, type AdminState } from "../guard.ts";
import type { AdminModuleContext } from "../module.ts";
import type { LoginLimits } from "./login-limits.ts";
import { clearSessionCookie, safeNext, setSessionCookie } from "./session-cookie.ts";

/**
 * Password sign-in: GET /admin/login (a page that works without JavaScript), POST
 * /admin/login, POST /admin/logout.
 *
 * The form has no session to carry a CSRF token yet, so it carries a pre-session one: a
 * random value set in an HttpOnly, SameSite=Strict cookie scoped to /admin/login when the
 * page is served, and echoed in the form's hidden field (a double-submit token). Another
 * site can neither read the cookie nor the page, so it cannot post a sign-in that logs the
 * victim's browser into the attacker's account; the Origin / Sec-Fetch-Site check comes first.
 */
export const LOGIN_CSRF_COOKIE = "intake_login";
const LOGIN_CSRF_MAX_AGE_MS = 2 * 3600 * 1000;
/** An email and a password fit in far less; a bigger form is not a sign-in. */
const LOGIN_FORM_LIMIT_BYTES = 8 * 1024;
const MAX_PASSWORD_LENGTH = 1024;

export function mountPasswordSignIn(router: Router, m: AdminModuleContext, limits: LoginLimits): void {
  const page = (ctx: Context, status: number, data: { next: string; email?: string; error?: { code: string; message: string } }) =>
    m.views.render(ctx, "login", { title: "Sign in", loginToken: loginToken(ctx, m), oidc: Boolean(m.config.admin.oidc), email: "", ...data }, status);

  router.get("/admin/login", m.guard.optional(), (ctx) => {
    const next = safeNext(ctx.query.next);
    if ((ctx.state as Partial<AdminState>).admin) return ctx.redirect(next);
    page(ctx, 200, { next });
  });

  router.post("/admin/login", m.guard.optional(), async (ctx) => {
    const form = await readForm(ctx.req, LOGIN_FORM_LIMIT_BYTES);
    const next = safeNext(form.get("next"));
    const email = (form.get("email") ?? "").trim().slice(0, 320);
    const password = form.get("password") ?? "";
    try {
      checkLoginToken(ctx, form.get(CSRF_FIELD), m.config.http.publicUrl);
      if (!email || !password) return page(ctx, 400, { next, email, error: { code: "invalid_credentials", message: "enter your email address and your password" } });
      if (password.length > MAX_PASSWORD_LENGTH) return page(ctx, 400, { next, email, error: { code: "invalid_credentials", message: `a password is at most ${MAX_PASSWORD_LENGTH} characters` } });
      // Counted before the password is verified: a blocked account or address gets no check.
      const attempt = await limits.reserve(email, ctx.ip);
      const now = m.now();
      const user = await m.users.checkPassword(email, password);
      if (!user) {
        // The same answer for an unknown account, a wrong password, a disabled account or an
        // account without a password (OIDC only); checkPassword spends the same time on each.
        await m.audit.record({ actor: "admin", action: "admin.sign_in_failed", detail: { method: "password", email: email.toLowerCase(), address: ctx.ip } }, now);
        m.logger.info({ address: ctx.ip }, "admin sign-in failed");
        return page(ctx, 401, { next, email, error: { code: "invalid_credentials", message: "the email address or the password is wrong" } });
      }
      await limits.succeeded(attempt);
      // A session from before (another account in this browser) ends here: no fixation.
      const previous = ctx.cookies.get(SESSION_COOKIE);
      if (previous) await m.sessions.revoke(previous, now);
      const session = await m.sessions.start(user.id, "password", m.config.admin.sessionTtlSeconds, now);
      await m.users.recordLogin(user.id, now);
      await m.audit.record({ actor: "admin", actorId: user.id, action: "admin.signed_in", detail: { method: "password", address: ctx.ip } }, now);
      m.logger.info({ adminId: user.id, method: "password" }, "admin signed in");
      setSessionCookie(ctx, m.config, session.token, session.expiresAt);
      ctx.cookies.set(LOGIN_CSRF_COOKIE, "", { path: "/admin/login", maxAge: 0, expires: new Date(0), httpOnly: true, sameSite: "strict", overwrite: true });
      ctx.status = 303;
      ctx.redirect(next);
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500 && status !== 503) throw err;
      if (err instanceof LimitExceededError) {
        if (err.retryAfterSeconds !== undefined) ctx.set("Retry-After", String(err.retryAfterSeconds));
        m.logger.warn({ address: ctx.ip }, "admin sign-in refused: too many failed attempts");
      }
      if (status === 503) m.logger.warn({ code: body.error.code }, "admin sign-in refused: the attempt counter is unavailable");
      page(ctx, status, { next, email, error: body.error });
    }
  });

  // Any signed-in admin may sign out; the guard checks the session's CSRF token.
  router.post("/admin/logout", m.guard.session({ page: true }), async (ctx) => {
    const token = ctx.cookies.get(SESSION_COOKIE);
    const now = m.now();
    if (token) await m.sessions.revoke(token, now);
    const admin = (ctx.state as AdminState).admin;
    await m.audit.record({ actor: "admin", actorId: admin.id, action: "admin.signed_out", detail: {} }, now);
    clearSessionCookie(ctx, m.config);
    ctx.status = 303;
    ctx.redirect("/admin/login");
  });
}

/** The pre-session token for this browser: the cookie's, or a new one (set now). */
function loginToken(ctx: Context, m: AdminModuleContext): string {
  const current = ctx.cookies.get(LOGIN_CSRF_COOKIE);
  if (current && /^[A-Za-z0-9_-]{32}$/.test(current)) return current;
  const token = randomBytes(24).toString("base64url");
  if (m.config.admin.cookieSecure) ctx.cookies.secure = true;
  ctx.cookies.set(LOGIN_CSRF_COOKIE, token, { path: "/admin/login", maxAge: LOGIN_CSRF_MAX_AGE_MS, httpOnly: true, sameSite: "strict", secure: m.config.admin.cookieSecure, overwrite: true });
  return token;
}

function checkLoginToken(ctx: Context, presented: string | null, publicUrl: string | undefined): void {
  checkSameOrigin(ctx, publicUrl);
  const expected = ctx.cookies.get(LOGIN_CSRF_COOKIE);
  if (!expected || !presented || !sameToken(presented, expected)) throw csrfError("the sign-in form has expired or came from elsewhere; reload the sign-in page and try again");
}
