import { createHash } from "node:crypto";
import type { RedisConnection } from "@intake/pipeline";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { DependencyUnavailableError, LimitExceededError } from "@intake/domain";

export interface LoginLimitSettings {
  perAccount: number;
  perAddress: number;
  windowSeconds: number;
  blockSeconds: number;
}

/** Redis that has not answered by then counts as down (the login is refused, see below). */
const COUNT_TIMEOUT_MS = 2000;

/**
 * Failed sign-ins per account and per client address, counted in Redis with
 * rate-limiter-flexible (keys under `<prefix>:admin-login:`), so every API process sees the
 * same counts. An attempt is counted BEFORE its password is checked and given back when it
 * succeeds: concurrent guesses cannot outrun the count, and a blocked account or address
 * never reaches the password check at all. Past `perAccount` (or `perAddress`) counted
 * attempts within `windowSeconds`, the account (or address) is blocked for `blockSeconds`.
 *
 * Redis down: sign-in is refused (503), not counted in memory. An in-process count would
 * allow N processes N times the guesses and forget them on every restart, and admin
 * sign-in is rare and worth more to an attacker than any upload; sessions already started
 * live in the database and keep working meanwhile.
 */
export class LoginLimits {
  private readonly byAccount: RateLimiterRedis;
  private readonly byAddress: RateLimiterRedis;

  constructor(redis: RedisConnection, s: LoginLimitSettings, prefix: string) {
    const limiter = (name: string, points: number) =>
      new RateLimiterRedis({
        storeClient: redis,
        keyPrefix: `${prefix}:admin-login:${name}`,
        points,
        duration: s.windowSeconds,
        blockDuration: s.blockSeconds,
        // A (re)connecting client would hold the request; refuse at once instead.
        rejectIfRedisNotReady: true,
      });
    this.byAccount = limiter("account", s.perAccount);
    this.byAddress = limiter("address", s.perAddress);
  }

  /**
   * Counts one attempt for the account and the address. Throws LimitExceededError (429,
   * with the seconds until the block ends) when either is blocked, and
   * DependencyUnavailableError (503) when Redis cannot count.
   */
  async reserve(email: string, address: string): Promise<LoginAttempt> {
    const account = accountKey(email);
    const [a, b] = await Promise.allSettled([bounded(this.byAccount.consume(account)), bounded(this.byAddress.consume(address))]);
    const failures = [a, b].filter((r): r is PromiseRejectedResult => r.status === "rejected");
    const broken = failures.find((r) => !(r.reason instanceof RateLimiterRes));
    if (broken) throw new DependencyUnavailableError("login_limits", "sign-in is unavailable: the attempt counter (Redis) cannot be reached; retry in a moment", { cause: broken.reason });
    if (failures.length > 0) {
      const waitMs = Math.max(...failures.map((r) => (r.reason as RateLimiterRes).msBeforeNext));
      const which = a.status === "rejected" ? "this account" : "this address";
      throw new LimitExceededError("too_many_sign_in_attempts", `too many failed sign-in attempts for ${which}; try again in ${Math.ceil(waitMs / 1000)} seconds`, undefined, waitMs / 1000);
    }
    return { account, address };
  }

  /** A successful sign-in: the account starts afresh, and the address gets its attempt back. */
  async succeeded(attempt: LoginAttempt): Promise<void> {
    await Promise.allSettled([this.byAccount.delete(attempt.account), this.byAddress.reward(attempt.address, 1)]);
  }
}

export interface LoginAttempt {
  account: string;
  address: string;
}

/** Accounts by a hash of the address typed: no e-mail addresses in Redis keys. */
function accountKey(email: string): string {
  return createHash("sha256").update(email.trim().toLowerCase()).digest("hex").slice(0, 32);
}

function bounded<T>(p: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("login limit count timed out")), COUNT_TIMEOUT_MS);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
