import type { Context, Next } from "koa";
import { createHash } from "node:crypto";
import { UnauthenticatedError } from "@intake/domain";
import type { Logger } from "@intake/runtime";
import { sessionIdOf } from "@intake/db";
import { sessionNotAllowed, type SessionGrant } from "../sessions/upload-sessions.ts";
import { keyIdOf, limitAddress, type RateLimits, type Requester } from "./rate-limits.ts";

/**
 * What the API needs to know about the caller: one tenant, one key. A caller holding an
 * upload session token (`is_...`) has `session` (and keyId `session:<id>`): it may use only
 * the routes that ask uploaderOf, never the ones that ask callerOf.
 */
export interface Caller {
  tenantId: string;
  keyId: string;
  session?: SessionGrant;
}

/** Proves upload session tokens (sessions/upload-sessions.ts UploadSessions). */
export interface SessionAuthenticator {
  authenticate(token: string): Promise<SessionGrant | null>;
}

export interface ApiKeyAuthenticator {
  authenticate(presented: string): Promise<Caller | null>;
  /** The caller a recent successful check of `presented` proved (so no check is needed), or null. */
  remembered?(presented: string): Caller | null;
}

const BEARER = /^Bearer[ ]+([^\s]+)[ ]*$/i;

export interface AuthOptions {
  keys: ApiKeyAuthenticator;
  /** Absent: session tokens are unknown keys. */
  sessions?: SessionAuthenticator;
  limits: RateLimits;
  logger: Logger;
}

/**
 * `Authorization: Bearer <key>` (RFC 6750). Authentication happens before any body is read
 * or any URL is signed. Unknown, malformed and revoked keys get the same answer, so the
 * response does not tell an attacker which of them they hold.
 *
 * The abuse limits come first: an address or key id past its failed-authentication limit is
 * refused (429) without its credentials being checked at all, so guessing stops there; the
 * same round trip counts the request against the address's and the key id's budgets.
 * Every failure is logged with the key id (never the secret) and the address.
 *
 * A key id's failures are limited too (guessing at one key from many addresses), but a key
 * id is never blocked outright: it is not a secret (it is logged, and `keys list` shows it),
 * so a block would let anyone who saw one lock its tenant out. Past the limit its wrong
 * secrets get 429 instead of 401; its right secret keeps working. Nor can whoever knows a key
 * id spend that key's request budget: only requests that proved the secret count against it.
 */
export function requireApiKey(o: AuthOptions) {
  const inFlight = new Map<string, Promise<Caller | null>>();
  /**
   * A check that may fail is counted as a failure before it runs (and given back when it
   * succeeds): otherwise a burst of concurrent guesses is all admitted before the first
   * failure is counted, and every guess in it is checked. Concurrent requests with one key
   * share one check (and one reservation), so a busy client's cold burst is not refused for
   * its own concurrency.
   */
  async function checkOnce(presented: string, who: Requester): Promise<{ caller: Caller | null; reserved: boolean }> {
    const id = createHash("sha256").update(presented).digest("base64url");
    const joined = inFlight.get(id);
    if (joined) return { caller: await joined, reserved: false };
    const check = (async () => {
      await o.limits.reserveAttempt(who);
      let caller: Caller | null;
      try {
        // A session token is never cached: a revoked one stops at once.
        caller = sessionIdOf(presented) !== null && o.sessions ? await sessionCaller(o.sessions, presented) : await o.keys.authenticate(presented);
      } catch (err) {
        // Not a failed authentication (the store is down): the reservation is given back.
        await o.limits.releaseAttempt(who);
        throw err;
      }
      if (caller) await o.limits.releaseAttempt(who);
      return caller;
    })();
    inFlight.set(id, check);
    try {
      return { caller: await check, reserved: true };
    } finally {
      inFlight.delete(id);
    }
  }

  return async function authenticate(ctx: Context, next: Next): Promise<void> {
    const header = ctx.get("authorization");
    const presented = BEARER.exec(header)?.[1];
    const keyId = presented ? keyIdOf(presented) : null;
    const who = { address: limitAddress(ctx.ip), keyId };
    // A key id's request budget is spent only by requests that proved its secret: the id is
    // no secret, and counting it before the check let anyone who saw one (even from an
    // address already blocked) drain its owner's budget. A key the cache remembers is proven
    // already (and starts no check), so the hot path spends both budgets at once; others
    // count after the check.
    const known = presented === undefined ? null : (o.keys.remembered?.(presented) ?? null);
    await o.limits.admit(known ? who : { address: who.address, keyId: null });
    const { caller, reserved } = known ? { caller: known, reserved: false } : presented ? await checkOnce(presented, who) : { caller: null, reserved: false };
    if (!caller) {
      const outcome = await o.limits.recordFailure(who, reserved);
      const sessionId = presented ? sessionIdOf(presented) : null;
      const reason = !header ? "missing" : !presented ? "not_bearer" : keyId || sessionId ? "unknown_or_revoked" : "malformed";
      o.logger.warn({ event: "authentication_failed", reason, keyId: keyId ?? (sessionId ? `session:${sessionId}` : null), address: ctx.ip, blocked: outcome.blocked, requestId: ctx.state.requestId }, "authentication failed");
      if (outcome.blocked) throw outcome.error;
      if (presented && sessionIdOf(presented) !== null && o.sessions) throw new UnauthenticatedError("the upload session token is unknown", "session_unknown");
      throw presented ? new UnauthenticatedError("the API key is unknown or revoked") : new UnauthenticatedError();
    }
    // Counted now that the secret is proven (and a seeded development key, which has no key
    // id of its own format, now that its id is known).
    if (!known || caller.keyId !== keyId) await o.limits.admitKey(caller.keyId);
    ctx.state.caller = caller;
    await next();
  };
}

async function sessionCaller(sessions: SessionAuthenticator, token: string): Promise<Caller | null> {
  const session = await sessions.authenticate(token);
  return session ? { tenantId: session.tenantId, keyId: `session:${session.id}`, session } : null;
}

/**
 * The API-key caller of a route. An upload session token is refused here (403
 * session_not_allowed): every route is closed to sessions unless it asks uploaderOf instead.
 */
export function callerOf(ctx: Context): Caller {
  const caller = uploaderOf(ctx);
  if (caller.session) throw sessionNotAllowed();
  return caller;
}

/** The caller of a route that an upload session may use too (it must then scope by caller.session). */
export function uploaderOf(ctx: Context): Caller {
  const caller = ctx.state.caller as Caller | undefined;
  // Routes that call this are mounted behind requireApiKey; reaching here without a caller
  // is a wiring bug, and refusing is the safe answer.
  if (!caller) throw new UnauthenticatedError();
  return caller;
}

/**
 * Remembers successful authentications for a few seconds, so a busy client does not cost
 * a database read per request. Only successes are kept (a new key works at once), keyed by
 * the SHA-256 of the presented key (the key itself is not kept), and only for `ttlMs`: a
 * revoked key stops working within that time, which is the price of the saved read.
 */
export function cacheAuthentications(keys: ApiKeyAuthenticator, o: { ttlMs: number; maxEntries?: number; now?: () => number }): ApiKeyAuthenticator {
  const maxEntries = o.maxEntries ?? 10_000;
  const now = o.now ?? Date.now;
  const entries = new Map<string, { caller: Caller; until: number }>();
  const idOf = (presented: string) => createHash("sha256").update(presented).digest("base64url");
  const fresh = (id: string) => {
    const hit = entries.get(id);
    if (hit && hit.until > now()) return hit.caller;
    entries.delete(id);
    return null;
  };
  return {
    async authenticate(presented: string): Promise<Caller | null> {
      const id = idOf(presented);
      const hit = fresh(id);
      if (hit) return hit;
      // The key itself is not kept, and its hash is taken once per call (this is per request).
      const caller = await keys.authenticate(presented);
      if (caller) {
        // Map keeps insertion order: the first entry is the oldest.
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
        entries.set(id, { caller, until: now() + o.ttlMs });
      }
      return caller;
    },
    remembered: (presented: string) => fresh(idOf(presented)),
  };
}
