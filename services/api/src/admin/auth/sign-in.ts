import { randomBytes } from "node:crypto";
import type { Context } from "koa";
import type { Router } from "@koa/router";
import type { AdminUser } from "@intake/db";
import { InvalidRequestError, LimitExceededError, type AdminPrincipal } from "@intake/domain";
import { errorResponse, HttpError } from "../../http/errors.ts";
import { readJsonObject, rejectUnknownFields } from "../../http/json-body.ts";
import { readForm } from "../form.ts";
import { checkSameOrigin, csrfError, CSRF_FIELD, sameToken, SESSION_COOKIE, type AdminState } from "../guard.ts";
import type { AdminModuleContext } from "../module.ts";
import type { LoginLimits } from "./login-limits.ts";
import { clearSessionCookie, safeNext, setSessionCookie } from "./session-cookie.ts";

/**
 * Password sign-in: GET /admin/login (a page that works without JavaScript), POST
 * /admin/login, POST /admin/logout; and its JSON twin for scripts, /v1/admin/session.
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
    try {
      checkLoginToken(ctx, form.get(CSRF_FIELD), m.config.http.publicUrl);
      await signIn(ctx, m, limits, email, form.get("password") ?? "");
      ctx.cookies.set(LOGIN_CSRF_COOKIE, "", { path: "/admin/login", maxAge: 0, expires: new Date(0), httpOnly: true, sameSite: "strict", overwrite: true });
      ctx.status = 303;
      ctx.redirect(next);
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500 && status !== 503) throw err;
      if (err instanceof LimitExceededError && err.retryAfterSeconds !== undefined) ctx.set("Retry-After", String(err.retryAfterSeconds));
      page(ctx, status, { next, email, error: body.error });
    }
  });

  // Any signed-in admin may sign out; the guard checks the session's CSRF token.
  router.post("/admin/logout", m.guard.session({ page: true }), async (ctx) => {
    await signOut(ctx, m);
    ctx.status = 303;
    ctx.redirect("/admin/login");
  });
  /*
   * The same sign-in for scripts and the `intake` CLI, as JSON: POST /v1/admin/session
   * {email, password} sets the same cookie and answers the session's CSRF token, which a
   * script sends back in X-CSRF-Token; GET says whose session it is; DELETE ends it. A
   * browser on another site cannot sign someone in here: a JSON body needs a CORS preflight
   * that the admin routes never grant (readJsonObject refuses a form or text/plain body),
   * and checkSameOrigin refuses a request whose Origin or Sec-Fetch-Site names another site.
   */
  router.post("/v1/admin/session", m.guard.optional(), async (ctx) => {
    checkSameOrigin(ctx, m.config.http.publicUrl);
    const b = await readJsonObject(ctx.req, LOGIN_FORM_LIMIT_BYTES);
    rejectUnknownFields(b, ["email", "password"]);
    if ((b.email !== undefined && typeof b.email !== "string") || (b.password !== undefined && typeof b.password !== "string")) {
      throw new InvalidRequestError("invalid_field", "email and password must be strings");
    }
    const email = String(b.email ?? "").trim().slice(0, 320);
    const { user, session } = await signIn(ctx, m, limits, email, String(b.password ?? "")).catch((err: unknown) => {
      // Whether this deployment also signs people in with OIDC is on its sign-in page for
      // anyone to see; saying so lets a client explain that such an account has no password.
      if (err instanceof HttpError && err.status === 401 && m.config.admin.oidc) throw new HttpError(401, err.code, err.message, { oidc: true });
      throw err;
    });
    ctx.status = 201;
    ctx.body = { admin: principalView(user), csrfToken: session.csrfToken, expiresAt: session.expiresAt.toISOString() };
  });
  router.get("/v1/admin/session", m.guard.session(), (ctx) => {
    ctx.body = { admin: principalView((ctx.state as AdminState).admin) };
  });
  // The guard checks the session's CSRF token, as for the sign-out form.
  router.delete("/v1/admin/session", m.guard.session(), async (ctx) => {
    await signOut(ctx, m);
    ctx.status = 204;
  });
}

/**
 * Checks an email and a password and starts a session (cookie set), or throws what to
 * answer: the form and the JSON route share every rule, limit, audit row and log line.
 */
async function signIn(ctx: Context, m: AdminModuleContext, limits: LoginLimits, email: string, password: string): Promise<{ user: AdminUser; session: { token: string; csrfToken: string; expiresAt: Date } }> {
  if (!email || !password) throw new HttpError(400, "invalid_credentials", "enter your email address and your password");
  if (password.length > MAX_PASSWORD_LENGTH) throw new HttpError(400, "invalid_credentials", `a password is at most ${MAX_PASSWORD_LENGTH} characters`);
  // Counted before the password is verified: a blocked account or address gets no check.
  let attempt: Awaited<ReturnType<LoginLimits["reserve"]>>;
  try {
    attempt = await limits.reserve(email, ctx.ip);
  } catch (err) {
    if (err instanceof LimitExceededError) m.logger.warn({ address: ctx.ip }, "admin sign-in refused: too many failed attempts");
    else if (errorResponse(err).status === 503) m.logger.warn({ code: errorResponse(err).body.error.code }, "admin sign-in refused: the attempt counter is unavailable");
    throw err;
  }
  const now = m.now();
  const user = await m.users.checkPassword(email, password);
  if (!user) {
    // The same answer for an unknown account, a wrong password, a disabled account or an
    // account without a password (OIDC only); checkPassword spends the same time on each.
    await m.audit.record({ actor: "admin", action: "admin.sign_in_failed", detail: { method: "password", email: email.toLowerCase(), address: ctx.ip } }, now);
    m.logger.info({ address: ctx.ip }, "admin sign-in failed");
    throw new HttpError(401, "invalid_credentials", "the email address or the password is wrong");
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
  return { user, session };
}

async function signOut(ctx: Context, m: AdminModuleContext): Promise<void> {
  const token = ctx.cookies.get(SESSION_COOKIE);
  const now = m.now();
  if (token) await m.sessions.revoke(token, now);
  const admin = (ctx.state as AdminState).admin;
  await m.audit.record({ actor: "admin", actorId: admin.id, action: "admin.signed_out", detail: {} }, now);
  clearSessionCookie(ctx, m.config);
}

const principalView = (p: AdminPrincipal) => ({ id: p.id, email: p.email, name: p.name, role: p.role, tenantIds: p.tenantIds });

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
