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
 * When Redis cannot be reached (the connection should have enableOfflineQueue: false and a
 * command timeout, so a call fails at once instead of queueing), each limiter falls back to
 * an in-memory insurance limiter with the same limits (the library's insuranceLimiter):
 * - request budgets then hold per process, not across processes (N processes allow N times
 *   the budget): the API keeps serving, the limits stay bounded;
 * - failed authentications are still counted and still blocked, per process: brute force
 *   stays stopped (at N times the limit at most) and valid keys keep working. An error from
 *   the insurance itself (it has no store, so none is expected) refuses the request (503).
 */
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
      insuranceLimiter: new RateLimiterMemory({ keyPrefix: `rl:${name}`, points, duration }),
    });
  const requestsByKey = limiter("req:key", s.perKey, s.windowSeconds);
  const requestsByAddress = limiter("req:addr", s.perAddress, s.windowSeconds);
  const f = s.authFailures;
  const failuresByAddress = limiter("authfail:addr", f.perAddress, f.windowSeconds, f.blockSeconds);
  const failuresByKey = limiter("authfail:key", f.perKey, f.windowSeconds, f.blockSeconds);

  const blockedError = (res: RateLimiterRes, what: string) =>
    new LimitExceededError("too_many_failed_authentications", `too many failed authentications from this ${what}; try again later`, { limit: what === "address" ? f.perAddress : f.perKey, windowSeconds: f.windowSeconds }, res.msBeforeNext / 1000);
  const budgetError = (res: RateLimiterRes, what: "key" | "address") =>
    new LimitExceededError("rate_limited", `too many requests for this ${what === "key" ? "API key" : "address"}: at most ${what === "key" ? s.perKey : s.perAddress} per ${s.windowSeconds} s`, { limit: what === "key" ? s.perKey : s.perAddress, windowSeconds: s.windowSeconds }, res.msBeforeNext / 1000);

  return {
    async admit(who: Requester): Promise<void> {
      // Issued together: ioredis writes them without waiting for replies, so the four cost
      // one round trip.
      const [byAddress, byKey, addressBudget, keyBudget] = await Promise.allSettled([
        failuresByAddress.get(who.address),
        who.keyId ? failuresByKey.get(who.keyId) : Promise.resolve(null),
        requestsByAddress.consume(who.address),
        who.keyId ? requestsByKey.consume(who.keyId) : Promise.resolve(null),
      ]);
      for (const [outcome, what] of [[byAddress, "address"], [byKey, "API key"]] as const) {
        // Fail closed: a failure count that cannot be read at all is not taken as zero.
        if (outcome.status === "rejected") throw new DependencyUnavailableError("rate_limiter", "failed authentications cannot be counted right now; retry later", { cause: outcome.reason });
        const limit = what === "address" ? f.perAddress : f.perKey;
        if (outcome.value && outcome.value.consumedPoints > limit) throw blockedError(outcome.value, what);
      }
      for (const [outcome, what] of [[addressBudget, "address"], [keyBudget, "key"]] as const) {
        // Request budgets fail open (an insurance limiter covers Redis errors, see above).
        if (outcome.status === "rejected" && outcome.reason instanceof RateLimiterRes) throw budgetError(outcome.reason, what);
      }
    },

    async admitKey(keyId: string): Promise<void> {
      try {
        await requestsByKey.consume(keyId);
      } catch (err) {
        if (err instanceof RateLimiterRes) throw budgetError(err, "key");
      }
    },

    async recordFailure(who: Requester) {
      const outcomes = await Promise.allSettled([failuresByAddress.consume(who.address), who.keyId ? failuresByKey.consume(who.keyId) : Promise.resolve(null)]);
      for (const [outcome, what] of [[outcomes[0], "address"], [outcomes[1], "API key"]] as const) {
        if (outcome.status === "fulfilled") continue;
        if (outcome.reason instanceof RateLimiterRes) return { blocked: true as const, error: blockedError(outcome.reason, what) };
        return { blocked: true as const, error: new DependencyUnavailableError("rate_limiter", "failed authentications cannot be counted right now; retry later", { cause: outcome.reason }) };
      }
      return { blocked: false as const };
    },
  };
}
