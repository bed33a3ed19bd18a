import { randomBytes } from "node:crypto";
import type { RedisConnection } from "@intake/pipeline";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

/**
 * A request budget (at most `limit` requests per fixed window of `windowSeconds`) shared by
 * every API process through Redis, without a Redis round trip per request.
 *
 * A process leases points from Redis in one atomic step (a Lua script: the window's count
 * goes up by the lease before any of it is spent) and spends them locally. Every admitted
 * request therefore spent a point Redis counted: across all processes a window never admits
 * more than `limit`, exactly as when each request was counted in Redis. What a lease changes
 * is the other direction: while one process holds points it has not spent, another can be
 * refused that much before the limit. That is kept small and short:
 * - a lease is at most 1/SHARE of what the window has left (so near the limit every request
 *   is counted in Redis one by one again), at most MAX_LEASE, and starts at one point,
 *   doubling only while a process spends its leases faster than they expire;
 * - a lease lives LEASE_MS; points it did not spend go back to the window they came from
 *   (never to a later one: each window has a token of its own).
 *
 * A block (the budget set to BLOCKED for the block time, by the failed-authentication limit)
 * is announced on a channel; every process subscribed drops its lease for that member at
 * once, and a process that missed the message sees the block when its lease ends.
 *
 * When Redis cannot be reached the budget is counted in memory instead, per process, with the
 * same limits (as rate-limiter-flexible's insuranceLimiter did): N processes then allow N
 * times the budget, and blocks set in Redis before the outage are not seen until it ends.
 */
export const BLOCKED = 1_000_000_000;
/** How long a lease may be spent (by default); unspent points go back after it. */
export const LEASE_MS = 250;
const MAX_LEASE = 128;
/** A lease takes at most this fraction of what is left of the window. */
const SHARE = 64;

export type BudgetAnswer = { admitted: true } | { admitted: false; blocked: boolean; retryAfterMs: number };

const ADMITTED: BudgetAnswer = { admitted: true };

// Gives back `back` points to the window `backToken` (if it is still the current one), then
// leases up to `want` points: [granted, ms left in the window, the window's token, count
// before the lease]. A blocked budget holds BLOCKED, which is never below the limit.
const LEASE_LUA = `
local key = KEYS[1]
local back = tonumber(ARGV[5])
if back > 0 and redis.call('hget', key, 'w') == ARGV[6] then
  local was = tonumber(redis.call('hget', key, 'n'))
  if was < ${BLOCKED} then redis.call('hset', key, 'n', math.max(0, was - back)) end
end
if tonumber(ARGV[1]) == 0 then return {0, 0, '', 0} end
local n = tonumber(redis.call('hget', key, 'n'))
if n == nil then
  n = 0
  redis.call('hset', key, 'n', 0, 'w', ARGV[4])
  redis.call('pexpire', key, ARGV[3])
end
local ttl = redis.call('pttl', key)
if ttl < 0 then
  redis.call('pexpire', key, ARGV[3])
  ttl = tonumber(ARGV[3])
end
local limit = tonumber(ARGV[2])
local granted = 0
if n < limit then
  granted = math.min(tonumber(ARGV[1]), math.max(1, math.floor((limit - n) / ${SHARE})))
  redis.call('hincrby', key, 'n', granted)
end
return {granted, ttl, redis.call('hget', key, 'w'), n}
`;

// Sets the budget to BLOCKED for ARGV[1] ms (a window of its own) and announces it.
const BLOCK_LUA = `
redis.call('del', KEYS[1])
redis.call('hset', KEYS[1], 'n', ${BLOCKED}, 'w', ARGV[2])
redis.call('pexpire', KEYS[1], ARGV[1])
redis.call('publish', ARGV[3], ARGV[4])
return 1
`;

interface Lease {
  remaining: number;
  /** The window the points came from. */
  token: string;
  ends: number;
  windowEnds: number;
  size: number;
  blockedUntil: number;
  fetching: Promise<BudgetAnswer> | null;
}

type LeasingRedis = RedisConnection & {
  intakeLeaseBudget(key: string, want: number, limit: number, windowMs: number, token: string, back: number, backToken: string): Promise<[number, number, string, number]>;
  intakeBlockBudget(key: string, blockMs: number, token: string, channel: string, member: string): Promise<number>;
};

export class LeasedBudget {
  private readonly redis: LeasingRedis;
  private readonly keyPrefix: string;
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly leaseMs: number;
  private readonly insurance: RateLimiterMemory;
  private readonly leases = new Map<string, Lease>();
  private readonly sweeper: NodeJS.Timeout;
  /** Where blocks are announced: every process using the same prefix listens there. */
  readonly channel: string;

  constructor(redis: RedisConnection, o: { keyPrefix: string; limit: number; windowSeconds: number; leaseMs?: number }) {
    this.redis = redis as LeasingRedis;
    if (!("intakeLeaseBudget" in redis)) {
      redis.defineCommand("intakeLeaseBudget", { numberOfKeys: 1, lua: LEASE_LUA });
      redis.defineCommand("intakeBlockBudget", { numberOfKeys: 1, lua: BLOCK_LUA });
    }
    this.keyPrefix = o.keyPrefix;
    this.channel = `${o.keyPrefix}:blocked`;
    this.limit = o.limit;
    this.windowMs = o.windowSeconds * 1000;
    this.leaseMs = o.leaseMs ?? LEASE_MS;
    this.insurance = new RateLimiterMemory({ keyPrefix: o.keyPrefix, points: o.limit, duration: o.windowSeconds });
    this.sweeper = setInterval(() => this.giveBackIdle(), this.leaseMs);
    this.sweeper.unref();
  }

  /** Spends one point of `member`'s budget: from the local lease when it has one. */
  async spend(member: string): Promise<BudgetAnswer> {
    for (;;) {
      const now = Date.now();
      const lease = this.leases.get(member);
      if (lease) {
        if (lease.blockedUntil > now) return { admitted: false, blocked: true, retryAfterMs: lease.blockedUntil - now };
        if (lease.remaining > 0 && now < lease.ends && now < lease.windowEnds) {
          lease.remaining--;
          return ADMITTED;
        }
        // Requests arriving while a lease is fetched wait for it rather than fetch their own;
        // a refusal (the window is full, or blocked) is theirs too.
        if (lease.fetching) {
          const answer = await lease.fetching;
          if (!answer.admitted) return answer;
          continue;
        }
      }
      return this.lease(member, lease, now);
    }
  }

  private async lease(member: string, previous: Lease | undefined, now: number): Promise<BudgetAnswer> {
    if (this.redis.status !== "ready") return this.spendInsured(member);
    const back = previous && now < previous.windowEnds ? previous.remaining : 0;
    const want = previous ? nextSize(previous, now) : 1;
    const lease: Lease = previous ?? { remaining: 0, token: "", ends: 0, windowEnds: 0, size: want, blockedUntil: 0, fetching: null };
    lease.remaining = 0; // given back with this call
    if (!previous) this.leases.set(member, lease);
    const fetching = (async (): Promise<BudgetAnswer> => {
      try {
        const [granted, ttl, token, before] = await this.redis.intakeLeaseBudget(this.key(member), want, this.limit, this.windowMs, newToken(), back, lease.token);
        const at = Date.now();
        Object.assign(lease, { token, ends: at + this.leaseMs, windowEnds: at + Number(ttl), size: want });
        if (Number(before) >= BLOCKED) {
          lease.blockedUntil = at + Number(ttl);
          return { admitted: false, blocked: true, retryAfterMs: Number(ttl) };
        }
        if (Number(granted) === 0) return { admitted: false, blocked: false, retryAfterMs: Number(ttl) };
        lease.remaining = Number(granted) - 1; // one is this request's
        return ADMITTED;
      } catch {
        return this.spendInsured(member);
      } finally {
        lease.fetching = null;
      }
    })();
    lease.fetching = fetching;
    return fetching;
  }

  private async spendInsured(member: string): Promise<BudgetAnswer> {
    try {
      await this.insurance.consume(member);
      return ADMITTED;
    } catch (res) {
      const r = res as RateLimiterRes;
      return { admitted: false, blocked: r.consumedPoints >= BLOCKED, retryAfterMs: r.msBeforeNext };
    }
  }

  /**
   * Blocks `member` for `seconds`: here at once, in Redis (and so in every process, which
   * the announcement tells to drop its lease), or in memory when Redis cannot be reached.
   */
  async block(member: string, seconds: number): Promise<void> {
    const lease = this.leases.get(member);
    const until = Date.now() + seconds * 1000;
    if (lease) Object.assign(lease, { remaining: 0, blockedUntil: until });
    else this.leases.set(member, { remaining: 0, token: "", ends: 0, windowEnds: until, size: 1, blockedUntil: until, fetching: null });
    try {
      if (this.redis.status !== "ready") throw new Error("redis not ready");
      await this.redis.intakeBlockBudget(this.key(member), seconds * 1000, newToken(), this.channel, member);
    } catch {
      await this.insurance.set(member, BLOCKED, seconds);
    }
  }

  /** Another process blocked `member`: its lease here must not be spent any more. */
  dropLease(member: string): void {
    const lease = this.leases.get(member);
    if (lease && lease.blockedUntil <= Date.now()) this.leases.delete(member);
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** Leases that ended unspent give their points back to their window, and are forgotten. */
  private giveBackIdle(): void {
    const now = Date.now();
    for (const [member, lease] of this.leases) {
      if (lease.fetching || now < lease.ends || lease.blockedUntil > now) continue;
      this.leases.delete(member);
      if (lease.remaining > 0 && now < lease.windowEnds && this.redis.status === "ready") {
        this.redis.intakeLeaseBudget(this.key(member), 0, this.limit, this.windowMs, "", lease.remaining, lease.token).catch(() => undefined);
      }
    }
  }

  private key(member: string): string {
    return `${this.keyPrefix}:${member}`;
  }
}

/** Doubles while leases are spent before they end, else shrinks to what the last one spent. */
function nextSize(l: Lease, now: number): number {
  const spent = l.size - l.remaining;
  if (l.remaining === 0 && now < l.ends) return Math.min(MAX_LEASE, l.size * 2);
  return Math.max(1, spent);
}

function newToken(): string {
  return randomBytes(6).toString("base64url");
}
