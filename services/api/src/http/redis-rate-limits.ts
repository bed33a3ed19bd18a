import type { RedisConnection } from "@intake/pipeline";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { DependencyUnavailableError, LimitExceededError } from "@intake/domain";
import { LeasedBudget, type BudgetAnswer } from "./leased-budgets.ts";
import type { RateLimits, Requester } from "./rate-limits.ts";

export interface RateLimitSettings {
  windowSeconds: number;
  perKey: number;
  perAddress: number;
  authFailures: { perAddress: number; perKey: number; windowSeconds: number; blockSeconds: number };
}

/**
 * RateLimits shared through Redis, so every API process on the same Redis and prefix sees
 * the same counts (keys under `<prefix>:rl:`).
 *
 * Request budgets (per address, per key id) are leased budgets (leased-budgets.ts): a process
 * leases a few points of a window at a time in one atomic Lua step and spends them locally,
 * so the hot path makes no round trip and a window still never admits more than its limit
 * across processes. An address's block for failed authentications lives in its budget: when
 * its failure count reaches the limit, the budget is set to BLOCKED for the block time and
 * the block is announced, so every process refuses the address from then on.
 *
 * Failed authentications are counted with rate-limiter-flexible's RateLimiterRedis (fixed
 * windows, one atomic Lua INCR per count), on every credential check (a cache miss): the
 * check is counted as a failure before it runs and given back if it succeeds, so concurrent
 * guesses cannot outrun the count, whichever process they reach.
 *
 * When Redis cannot be reached (the connection should have enableOfflineQueue: false and a
 * command timeout, so a call fails at once instead of queueing), each limit falls back to an
 * in-memory count with the same limits (the library's insuranceLimiter, or the budget's own):
 * - request budgets then hold per process, not across processes (N processes allow N times
 *   the budget): the API keeps serving, the limits stay bounded;
 * - failed authentications are still counted and still blocked, per process: brute force
 *   stays stopped (at N times the limit at most) and valid keys keep working. Blocks set in
 *   Redis before the outage are not seen until it ends.
 */
export interface RedisRateLimits extends RateLimits {
  /** Stops the budgets' timers and the block subscription (not the connections passed in). */
  close(): Promise<void>;
}

/**
 * `subscriber`: a connection of its own (a subscribed connection can do nothing else) on
 * which blocks announced by other processes arrive; without it they are seen when this
 * process's lease for the address ends (`leaseMs`, LEASE_MS by default).
 */
export function createRedisRateLimits(redis: RedisConnection, s: RateLimitSettings, prefix: string, o: { subscriber?: RedisConnection; leaseMs?: number } = {}): RedisRateLimits {
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
  const budget = (name: string, limit: number) => new LeasedBudget(redis, { keyPrefix: `${prefix}:rl:budget:${name}`, limit, windowSeconds: s.windowSeconds, ...(o.leaseMs ? { leaseMs: o.leaseMs } : {}) });
  const requestsByKey = budget("key", s.perKey);
  const requestsByAddress = budget("addr", s.perAddress);
  const subscriber = o.subscriber;
  const onBlocked = (channel: string, member: string) => {
    if (channel === requestsByAddress.channel) requestsByAddress.dropLease(member);
  };
  // On every (re)connection: a subscribe sent while it is down may fail (no offline queue),
  // and ioredis re-subscribes only what was subscribed.
  const subscribe = () => void subscriber?.subscribe(requestsByAddress.channel).catch(() => undefined);
  if (subscriber) {
    subscriber.on("message", onBlocked);
    subscriber.on("ready", subscribe);
    if (subscriber.status === "ready") subscribe();
  }
  const f = s.authFailures;
  const failuresByAddress = limiter("authfail:addr", f.perAddress, f.windowSeconds);
  // Past its limit a key id's failures stay refused for the block time (the library's
  // blockDuration), but only its failures: see recordFailure.
  const failuresByKey = limiter("authfail:key", f.perKey, f.windowSeconds, f.blockSeconds);

  const blockedError = (msBeforeNext: number, what: "address" | "key") =>
    new LimitExceededError(
      "too_many_failed_authentications",
      `too many failed authentications ${what === "key" ? "for this API key" : "from this address"}; try again later`,
      { limit: what === "key" ? f.perKey : f.perAddress, windowSeconds: f.windowSeconds },
      msBeforeNext / 1000,
    );
  const refusal = (answer: BudgetAnswer, what: "address" | "key") => {
    if (answer.admitted) return null;
    return answer.blocked
      ? blockedError(answer.retryAfterMs, what)
      : new LimitExceededError("rate_limited", `too many requests for this ${what === "key" ? "API key" : "address"}: at most ${what === "key" ? s.perKey : s.perAddress} per ${s.windowSeconds} s`, { limit: what === "key" ? s.perKey : s.perAddress, windowSeconds: s.windowSeconds }, answer.retryAfterMs / 1000);
  };

  return {
    async admit(who: Requester): Promise<void> {
      // Both budgets are spent, as before (a refusal by one does not give the other back).
      const byAddress = requestsByAddress.spend(who.address);
      const byKey = who.keyId ? requestsByKey.spend(who.keyId) : null;
      const refused = refusal(await byAddress, "address") ?? (byKey ? refusal(await byKey, "key") : null);
      if (byKey) await byKey;
      if (refused) throw refused;
    },

    async admitKey(keyId: string): Promise<void> {
      const refused = refusal(await requestsByKey.spend(keyId), "key");
      if (refused) throw refused;
    },

    async close(): Promise<void> {
      requestsByKey.close();
      requestsByAddress.close();
      if (subscriber) {
        subscriber.off("message", onBlocked);
        subscriber.off("ready", subscribe);
        // Not while it is away: a queued command would hold the shutdown until it gave up.
        if (subscriber.status === "ready") await subscriber.unsubscribe(requestsByAddress.channel).catch(() => undefined);
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
        await requestsByAddress.block(who.address, f.blockSeconds);
        // Only the count's expiry changes, not its value: a reservation refused at the limit
        // increments the count and gives its point back (reserveAttempt), so overwriting the
        // value between the two let that give-back open a slot (a burst got limit + 1
        // checks, one time in three).
        await redis.pexpire(failuresByAddress.getKey(who.address), f.blockSeconds * 1000).catch(() => undefined);
        // This failure itself was within the limit (401) unless it went past it.
        if (addressCount > f.perAddress) answer = { blocked: true, error: blockedError(f.blockSeconds * 1000, "address") };
      }
      // A key id is not blocked: it is no secret (logs, `keys list`), so blocking it would let
      // anyone who saw one lock its tenant out, while its 256-bit secret cannot be guessed
      // anyway. Its failures past the limit are answered 429 instead of 401.
      if (who.keyId !== null && byKey.status === "rejected") {
        answer ??= byKey.reason instanceof RateLimiterRes ? { blocked: true, error: blockedError(byKey.reason.msBeforeNext, "key") } : cannotCount(byKey.reason);
      }
      return answer ?? { blocked: false as const };
    },
  };
}
