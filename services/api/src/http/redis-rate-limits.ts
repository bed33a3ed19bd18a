import type { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { DependencyUnavailableError, LimitExceededError } from "@intake/domain";
import type { RateLimits, Requester } from "./rate-limits.ts";

export interface RateLimitSettings {
  windowSeconds: number;
  perKey: number;
  perAddress: number;
  authFailures: { perAddress: number; perKey: number; windowSeconds: number; blockSeconds: number };
}

/**
 * RateLimits on rate-limiter-flexible's RateLimiterRedis: fixed windows, one atomic Lua
 * INCR per count, keys under `<prefix>:rl:`, so every API process on the same Redis and
 * prefix shares them.
 *
 * The hot path is one round trip: admit() consumes the address's and the key id's request
 * budgets (two EVALSHA, written together). An address's block for failed authentications
 * lives in its budget key: when its failure count passes the limit, the key is set to
 * BLOCKED for the block time, so the next consume answers "blocked" without reading the
 * failure counters. Those are touched only when authentication fails.
 *
 * When Redis cannot be reached (the connection should have enableOfflineQueue: false and a
 * command timeout, so a call fails at once instead of queueing), each limiter falls back to
 * an in-memory insurance limiter with the same limits (the library's insuranceLimiter):
 * - request budgets then hold per process, not across processes (N processes allow N times
 *   the budget): the API keeps serving, the limits stay bounded;
 * - failed authentications are still counted and still blocked, per process: brute force
 *   stays stopped (at N times the limit at most) and valid keys keep working. Blocks set in
 *   Redis before the outage are not seen until it ends.
 */
const BLOCKED = 1_000_000_000;

export function createRedisRateLimits(redis: Redis, s: RateLimitSettings, prefix: string): RateLimits {
  const limiter = (name: string, points: number, duration: number, blockDuration = 0) =>
    new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${prefix}:rl:${name}`,
      points,
      duration,
      blockDuration,
      // An ioredis client that is (re)connecting would otherwise accept the command and make
      // the request wait; go to the insurance at once instead.
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ keyPrefix: `rl:${name}`, points, duration, blockDuration }),
    });
  const requestsByKey = limiter("req:key", s.perKey, s.windowSeconds);
  const requestsByAddress = limiter("req:addr", s.perAddress, s.windowSeconds);
  const f = s.authFailures;
  const failuresByAddress = limiter("authfail:addr", f.perAddress, f.windowSeconds);
  // Past its limit a key id's failures stay refused for the block time (the library's
  // blockDuration), but only its failures: see recordFailure.
  const failuresByKey = limiter("authfail:key", f.perKey, f.windowSeconds, f.blockSeconds);

  const blockedError = (res: RateLimiterRes, what: "address" | "key") =>
    new LimitExceededError(
      "too_many_failed_authentications",
      `too many failed authentications ${what === "key" ? "for this API key" : "from this address"}; try again later`,
      { limit: what === "key" ? f.perKey : f.perAddress, windowSeconds: f.windowSeconds },
      res.msBeforeNext / 1000,
    );
  const refusal = (res: RateLimiterRes, what: "address" | "key") =>
    res.consumedPoints >= BLOCKED
      ? blockedError(res, what)
      : new LimitExceededError("rate_limited", `too many requests for this ${what === "key" ? "API key" : "address"}: at most ${what === "key" ? s.perKey : s.perAddress} per ${s.windowSeconds} s`, { limit: what === "key" ? s.perKey : s.perAddress, windowSeconds: s.windowSeconds }, res.msBeforeNext / 1000);

  return {
    async admit(who: Requester): Promise<void> {
      const [byAddress, byKey] = await Promise.allSettled([requestsByAddress.consume(who.address), who.keyId ? requestsByKey.consume(who.keyId) : Promise.resolve(null)]);
      // A rejection that is not a RateLimiterRes is a store error the insurance could not
      // cover (it has no store, so none is expected): request budgets fail open.
      if (byAddress.status === "rejected" && byAddress.reason instanceof RateLimiterRes) throw refusal(byAddress.reason, "address");
      if (byKey.status === "rejected" && byKey.reason instanceof RateLimiterRes) throw refusal(byKey.reason, "key");
    },

    async admitKey(keyId: string): Promise<void> {
      try {
        await requestsByKey.consume(keyId);
      } catch (err) {
        if (err instanceof RateLimiterRes) throw refusal(err, "key");
      }
    },

    async recordFailure(who: Requester) {
      const counted = await Promise.allSettled([failuresByAddress.consume(who.address), who.keyId ? failuresByKey.consume(who.keyId) : Promise.resolve(null)]);
      // Only an address is blocked outright (its budget key set to BLOCKED: not even a right
      // key is looked at from there). A key id is not: it is no secret (logs, `keys list`), so
      // blocking it would let anyone who saw one lock its tenant out, while its 256-bit secret
      // cannot be guessed anyway. Its failures past the limit are answered 429 instead of 401.
      const targets = [
        [counted[0], requestsByAddress, who.address, "address"],
        [counted[1], null, who.keyId, "key"],
      ] as const;
      let answer: { blocked: true; error: Error } | undefined;
      for (const [outcome, budget, id, what] of targets) {
        if (outcome.status === "fulfilled" || id === null) continue;
        // Fail closed: a failure that cannot be counted at all is answered 503, not 401.
        if (!(outcome.reason instanceof RateLimiterRes)) {
          answer ??= { blocked: true, error: new DependencyUnavailableError("rate_limiter", "failed authentications cannot be counted right now; retry later", { cause: outcome.reason }) };
          continue;
        }
        if (budget) await budget.set(id, BLOCKED, f.blockSeconds);
        answer ??= { blocked: true, error: blockedError(budget ? new RateLimiterRes(0, f.blockSeconds * 1000) : outcome.reason, what) };
      }
      if (answer) return answer;
      return { blocked: false as const };
    },
  };
}
