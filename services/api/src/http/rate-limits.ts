import { isIPv6 } from "node:net";

/**
 * The API's abuse limits as a port: the auth middleware asks these questions, an adapter
 * (redis-rate-limits.ts, on rate-limiter-flexible) keeps the counts where every API process
 * sees them. Refusals are LimitExceededError (429 with Retry-After).
 */
export interface Requester {
  /** The client's address as limits count it (see limitAddress). */
  address: string;
  /** The key id of a well-formed presented key, before anyone checked its secret. */
  keyId: string | null;
}

export interface RateLimits {
  /**
   * Before the credentials are looked at: refuses a requester whose address is blocked for
   * failed authentications, or whose address or key id is over its request budget, and
   * counts this request against both budgets, in one round trip to the store. The caller
   * passes a key id only once its secret is proven (a cached success), see requireApiKey.
   */
  admit(who: Requester): Promise<void>;
  /** Counts a request against a key id whose secret the check just proved. */
  admitKey(keyId: string): Promise<void>;
  /**
   * Before a credential is checked: counts the check as a failure of the address ahead of
   * its outcome, so concurrent guesses cannot all be checked before the first failure is
   * counted. Refuses (429) once failures and checks in flight reach the address's limit.
   */
  reserveAttempt(who: Requester): Promise<void>;
  /** The reserved check succeeded: gives its failure back. */
  releaseAttempt(who: Requester): Promise<void>;
  /**
   * Counts a failed authentication (`reserved`: its address failure was counted ahead by
   * reserveAttempt); `blocked` (with the error to answer) once past the limit.
   */
  recordFailure(who: Requester, reserved?: boolean): Promise<{ blocked: false } | { blocked: true; error: Error }>;
}

/**
 * The key id of a well-formed key (`ik_<kind>_<id>_<secret>`, the format ApiKeyRepository
 * issues), read without any lookup so the failure limit per key id can be asked before the
 * secret is checked. Anything else has no key id: only the address limits apply to it.
 */
const KEY_ID = /^ik_(?:live|dev)_([a-z0-9]{16})_[A-Za-z0-9_-]{43}$/;
export function keyIdOf(presented: string): string | null {
  return KEY_ID.exec(presented)?.[1] ?? null;
}

/**
 * The address a limit counts. IPv4-mapped IPv6 (however it is spelled) is the IPv4 address.
 * Other IPv6 addresses count by their /64: one subscriber is routinely given a whole /64, so
 * counting single addresses would let one client rotate through 2^64 of them. A port that a
 * proxy wrote beside the address ("203.0.113.7:51234", "[2001:db8::1]:443") is dropped:
 * counted per port, every new connection would be a new client.
 */
export function limitAddress(raw: string): string {
  const ip = /^\[([^\]]+)\](?::\d+)?$/.exec(raw)?.[1] ?? /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(raw)?.[1] ?? raw;
  if (!isIPv6(ip)) return ip;
  const g = ipv6Groups(ip);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff].join(".");
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (zone id dropped, an IPv4 tail is two groups). */
function ipv6Groups(ip: string): number[] {
  let s = ip.split("%")[0]!;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail = ""] = s.split("::") as [string?, string?];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = s.includes("::") ? [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right] : left;
  return groups.map((x) => parseInt(x, 16));
}
