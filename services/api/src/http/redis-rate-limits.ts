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
 * lives in its budget key: when its failure count reaches the limit, the key is set to
 * BLOCKED for the block time, so the next consume answers "blocked" without reading the
 * failure counters. Those are touched only when a credential is really checked (a cache
 * miss): the check is counted as a failure before it runs and given back if it succeeds, so
 * concurrent guesses cannot outrun the count.
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

    async reserveAttempt(who: Requester): Promise<void> {
      try {
        await failuresByAddress.consume(who.address);
      } catch (err) {
        // Fail closed, as for a failure that cannot be counted.
        if (!(err instanceof RateLimiterRes)) throw new DependencyUnavailableError("rate_limiter", "authentications cannot be counted right now; retry later", { cause: err });
        // Not blocked (admit let it through), so the count is full of checks still in
        // flight: refuse this one without counting it, and retry once they are answered.
        await failuresByAddress.reward(who.address).catch(() => undefined);
        throw new LimitExceededError("too_many_authentication_attempts", "too many authentications from this address are being checked at once; retry shortly", { limit: f.perAddress }, 1);
      }
    },

    async releaseAttempt(who: Requester): Promise<void> {
      // Best effort: a reservation not given back counts as one failure until the window ends.
      await failuresByAddress.reward(who.address).catch(() => undefined);
    },

    async recordFailure(who: Requester, reserved = false) {
      const counted = await Promise.allSettled([
        // A reserved failure is counted already: read the count instead.
        reserved ? failuresByAddress.get(who.address).then((res) => res ?? new RateLimiterRes(f.perAddress, 0, 1)) : failuresByAddress.consume(who.address),
        who.keyId ? failuresByKey.consume(who.keyId) : Promise.resolve(null),
      ]);
      let answer: { blocked: true; error: Error } | undefined;
      const [byAddress, byKey] = counted;
      const cannotCount = (cause: unknown) => ({ blocked: true as const, error: new DependencyUnavailableError("rate_limiter", "failed authentications cannot be counted right now; retry later", { cause }) });
      // Only an address is blocked outright (its budget key set to BLOCKED: not even a right
      // key is looked at from there), from the failure that reaches its limit. Its failure
      // count stays full for the block time and ends with it (so requests admitted just before
      // the block cannot be checked, and after it the address has the whole limit again
      // rather than a count that refuses every reservation until the window ends).
      const addressCount = byAddress.status === "fulfilled" ? (byAddress.value as RateLimiterRes).consumedPoints : byAddress.reason instanceof RateLimiterRes ? byAddress.reason.consumedPoints : null;
      if (addressCount === null) {
        answer = cannotCount(byAddress.status === "rejected" ? byAddress.reason : undefined);
      } else if (addressCount >= f.perAddress) {
        await requestsByAddress.set(who.address, BLOCKED, f.blockSeconds);
        await failuresByAddress.set(who.address, Math.max(addressCount, f.perAddress), f.blockSeconds).catch(() => undefined);
        // This failure itself was within the limit (401) unless it went past it.
        if (addressCount > f.perAddress) answer = { blocked: true, error: blockedError(new RateLimiterRes(0, f.blockSeconds * 1000), "address") };
      }
      // A key id is not blocked: it is no secret (logs, `keys list`), so blocking it would let
      // anyone who saw one lock its tenant out, while its 256-bit secret cannot be guessed
      // anyway. Its failures past the limit are answered 429 instead of 401.
      if (who.keyId !== null && byKey.status === "rejected") {
        answer ??= byKey.reason instanceof RateLimiterRes ? { blocked: true, error: blockedError(byKey.reason, "key") } : cannotCount(byKey.reason);
      }
      return answer ?? { blocked: false as const };
    },
  };
}
