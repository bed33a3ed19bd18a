import { createHash, randomBytes } from "node:crypto";
import type { Context } from "koa";
import type { Router } from "@koa/router";
import * as oidc from "openid-client";
import { ConflictError } from "@intake/domain";
import type { AdminUser } from "@intake/db";
import { SESSION_COOKIE } from "../guard.ts";
import type { AdminModuleContext } from "../module.ts";
import { identityFromClaims, type OidcIdentity } from "./oidc-claims.ts";
import { safeNext, setSessionCookie } from "./session-cookie.ts";

/**
 * OpenID Connect sign-in (authorization code flow with PKCE S256, state and nonce), with
 * openid-client's functional API. GET /admin/login/oidc sends the browser to the identity
 * provider; GET /admin/oidc/callback takes the code back, verifies the ID token, reads the
 * role (and the tenant scope) from the configured claims, provisions or updates the admin
 * user found by (issuer, subject), and starts a session with method "oidc".
 *
 * The flow's secrets (state, nonce, PKCE verifier, where to go next) stay server side, in
 * Redis for ten minutes under a random id; the browser holds only that id, in a cookie that
 * must be SameSite=Lax: the provider's redirect back is a cross-site navigation, on which a
 * Strict cookie would not be sent. Taking the entry out of Redis on the first callback makes
 * each flow usable once.
 */
export const OIDC_COOKIE = "intake_oidc";
const FLOW_TTL_SECONDS = 600;
const IDP_TIMEOUT_SECONDS = 10;

interface Flow {
  state: string;
  nonce: string;
  verifier: string;
  next: string;
}

export function mountOidcSignIn(router: Router, m: AdminModuleContext): void {
  const s = m.config.admin.oidc;
  let discovered: Promise<oidc.Configuration> | undefined;
  const configuration = (): Promise<oidc.Configuration> => {
    if (!s) throw new Error("OIDC is not configured");
    discovered ??= oidc.discovery(new URL(s.issuer), s.clientId, undefined, s.clientSecret ? oidc.ClientSecretBasic(s.clientSecret) : oidc.None(), {
      timeout: IDP_TIMEOUT_SECONDS,
      ...(s.allowInsecure ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    // A provider that was down is asked again next time rather than remembered as down.
    discovered.catch(() => (discovered = undefined));
    return discovered;
  };
  const flowKey = (id: string) => `${m.config.redis.prefix}:admin-oidc:${createHash("sha256").update(id).digest("hex")}`;
  const refused = (ctx: Context, status: number, code: string, message: string) =>
    m.views.render(ctx, "error", { title: "Sign-in refused", status, code, message, retry: "/admin/login" }, status);

  router.get("/admin/login/oidc", m.guard.optional(), async (ctx) => {
    if (!s) return refused(ctx, 404, "oidc_not_configured", "single sign-on is not configured here; sign in with your password");
    let config: oidc.Configuration;
    try {
      config = await configuration();
    } catch (err) {
      m.logger.warn({ cause: errorName(err) }, "OIDC discovery failed");
      return refused(ctx, 503, "identity_provider_unavailable", "the identity provider cannot be reached; try again in a moment or sign in with your password");
    }
    const flow: Flow = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier(), next: safeNext(ctx.query.next) };
    const id = randomBytes(24).toString("base64url");
    try {
      await m.redis.set(flowKey(id), JSON.stringify(flow), "EX", FLOW_TTL_SECONDS);
    } catch {
      return refused(ctx, 503, "sign_in_unavailable", "sign-in cannot start right now (its store, Redis, is unavailable); try again in a moment");
    }
    if (m.config.admin.cookieSecure) ctx.cookies.secure = true;
    ctx.cookies.set(OIDC_COOKIE, id, { httpOnly: true, sameSite: "lax", secure: m.config.admin.cookieSecure, path: "/admin/oidc", maxAge: FLOW_TTL_SECONDS * 1000, overwrite: true });
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: s.redirectUrl,
      scope: s.scopes,
      response_type: "code",
      code_challenge: await oidc.calculatePKCECodeChallenge(flow.verifier),
      code_challenge_method: "S256",
      state: flow.state,
      nonce: flow.nonce,
    });
    ctx.status = 303;
    ctx.redirect(url.href);
  });

  router.get("/admin/oidc/callback", m.guard.optional(), async (ctx) => {
    if (!s) return refused(ctx, 404, "oidc_not_configured", "single sign-on is not configured here");
    const id = ctx.cookies.get(OIDC_COOKIE);
    ctx.cookies.set(OIDC_COOKIE, "", { httpOnly: true, sameSite: "lax", path: "/admin/oidc", maxAge: 0, expires: new Date(0), overwrite: true });
    let raw: string | null = null;
    try {
      raw = id ? await m.redis.getdel(flowKey(id)) : null;
    } catch {
      return refused(ctx, 503, "sign_in_unavailable", "sign-in cannot finish right now (its store, Redis, is unavailable); try again in a moment");
    }
    if (!raw) return refused(ctx, 400, "sign_in_expired", "this sign-in has expired or was started in another browser; start again");
    const flow = JSON.parse(raw) as Flow;

    let claims: Record<string, unknown>;
    try {
      const config = await configuration();
      // The URL the provider redirected to, as this service is known publicly (behind a
      // proxy ctx.href would name the internal host): the configured redirect URL plus the
      // provider's query string.
      const current = new URL(s.redirectUrl);
      current.search = ctx.querystring;
      const tokens = await oidc.authorizationCodeGrant(config, current, { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce, idTokenExpected: true });
      claims = { ...(tokens.claims() as Record<string, unknown>) };
      // Many providers keep custom claims out of the ID token of a code flow and serve them
      // from the userinfo endpoint: ask it for what is missing.
      const wanted = [s.roleClaim, s.tenantsClaim, "email"].filter((c): c is string => Boolean(c));
      if (wanted.some((c) => claims[c] === undefined) && config.serverMetadata().userinfo_endpoint) {
        const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub as string);
        for (const [k, v] of Object.entries(info)) if (claims[k] === undefined) claims[k] = v;
      }
    } catch (err) {
      m.logger.warn({ cause: errorName(err) }, "OIDC sign-in did not verify");
      if (err instanceof oidc.AuthorizationResponseError) return refused(ctx, 403, "identity_provider_refused", `the identity provider refused the sign-in (${err.error})`);
      if (err instanceof TypeError) return refused(ctx, 503, "identity_provider_unavailable", "the identity provider cannot be reached; try again in a moment");
      return refused(ctx, 400, "sign_in_not_verified", "the identity provider's answer could not be verified (state, nonce, code or token); start again");
    }

    const verdict = identityFromClaims(claims, s);
    const now = m.now();
    if (!verdict.ok) {
      await m.audit.record({ actor: "admin", action: "admin.sign_in_failed", detail: { method: "oidc", reason: verdict.code, subject: String(claims.sub ?? "").slice(0, 255), address: ctx.ip } }, now);
      return refused(ctx, 403, verdict.code, verdict.message);
    }
    const outcome = await provision(m, verdict.identity, now);
    if ("refused" in outcome) {
      await m.audit.record({ actor: "admin", actorId: outcome.userId ?? null, action: "admin.sign_in_failed", detail: { method: "oidc", reason: outcome.refused.code, address: ctx.ip } }, now);
      return refused(ctx, 403, outcome.refused.code, outcome.refused.message);
    }
    const user = outcome.user;
    const previous = ctx.cookies.get(SESSION_COOKIE);
    if (previous) await m.sessions.revoke(previous, now);
    const session = await m.sessions.start(user.id, "oidc", m.config.admin.sessionTtlSeconds, now);
    await m.users.recordLogin(user.id, now);
    await m.audit.record({ actor: "admin", actorId: user.id, action: "admin.signed_in", detail: { method: "oidc", issuer: verdict.identity.issuer, address: ctx.ip } }, now);
    m.logger.info({ adminId: user.id, method: "oidc" }, "admin signed in");
    setSessionCookie(ctx, m.config, session.token, session.expiresAt);
    // A same-site step before the next page: a redirect here would continue the provider's
    // cross-site navigation, and the browser would withhold the new SameSite=Strict cookie.
    m.views.render(ctx, "signed-in", { title: "Signed in", refreshTo: flow.next });
  });
}

type Provisioned = { user: AdminUser } | { refused: { code: string; message: string }; userId?: string };

/**
 * The admin user behind an identity: found by (issuer, subject) and brought in line with the
 * provider's role and tenants, or created on first sign-in (just-in-time provisioning).
 */
async function provision(m: AdminModuleContext, id: OidcIdentity, now: Date): Promise<Provisioned> {
  const existing = await m.users.byOidcSubject(id.issuer, id.subject);
  if (!existing) {
    // An account of the same address made for password sign-in is not taken over by
    // whoever the provider vouches for: an admin links or removes it deliberately.
    if (await m.users.byEmail(id.email)) return { refused: { code: "account_exists", message: `an admin account for ${id.email} already exists for password sign-in and is not linked to this identity provider; ask an administrator` } };
    try {
      const user = await m.users.create({ email: id.email, name: id.name, role: id.role, tenantIds: id.tenantIds, oidc: { issuer: id.issuer, subject: id.subject } }, now);
      await m.audit.record({ actor: "admin", actorId: user.id, action: "admin.user_provisioned", detail: { via: "oidc", issuer: id.issuer, role: id.role, tenantIds: id.tenantIds } }, now);
      return { user };
    } catch (err) {
      // Two first sign-ins at once: the other one created it.
      if (!(err instanceof ConflictError)) throw err;
      const raced = await m.users.byOidcSubject(id.issuer, id.subject);
      if (!raced) throw err;
      return { user: raced };
    }
  }
  if (existing.disabledAt) return { refused: { code: "account_disabled", message: "this admin account is disabled; ask an administrator" }, userId: existing.id };
  const patch: { role?: OidcIdentity["role"]; tenantIds?: string[] | null; name?: string } = {};
  if (existing.role !== id.role) patch.role = id.role;
  // Without a configured tenants claim the provider says nothing about scope (id.tenantIds
  // is null only for want of a claim): the limit an admin set in the settings stands, or
  // every sign-in would quietly widen a limited reviewer to every tenant.
  const scopeFromProvider = Boolean(m.config.admin.oidc?.tenantsClaim);
  if (scopeFromProvider && JSON.stringify(existing.tenantIds) !== JSON.stringify(id.tenantIds)) patch.tenantIds = id.tenantIds;
  if (existing.name !== id.name) patch.name = id.name;
  if (Object.keys(patch).length === 0) return { user: existing };
  const updated = (await m.users.update(existing.id, patch, now))!;
  await m.audit.record({ actor: "admin", actorId: existing.id, action: "admin.user_updated", detail: { via: "oidc", before: { role: existing.role, tenantIds: existing.tenantIds, name: existing.name }, after: patch } }, now);
  return { user: updated };
}

function errorName(err: unknown): string {
  const e = err as { name?: string; code?: string };
  return String(e?.code ?? e?.name ?? "error");
}
