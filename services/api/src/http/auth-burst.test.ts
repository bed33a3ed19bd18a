import { afterAll, beforeAll, describe, expect, it } from "vitest";
import Koa from "koa";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { Redis } from "ioredis";
import { createLogger } from "@intake/runtime";
import { cacheAuthentications, requireApiKey, type ApiKeyAuthenticator, type Caller } from "./auth.ts";
import { errorMiddleware } from "./errors.ts";
import { createRedisRateLimits } from "./redis-rate-limits.ts";

/**
 * The failed-authentication limit must bound how many credentials are CHECKED, not only how
 * many are answered 401: a burst of concurrent guesses from one address is otherwise all
 * admitted before the first failure is counted, every guess is looked up, and a right one
 * would be answered 200. Real Redis; the key store is slow (a database under load) so the
 * whole burst is in flight at once.
 */
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const LIMIT = 5;
const PER_KEY = 50;
const RIGHT = `ik_live_0123456789abcdef_${"R".repeat(43)}`;
const RIGHT2 = `ik_live_0123456789abcdee_${"S".repeat(43)}`;
const RIGHT3 = `ik_live_0123456789abcded_${"T".repeat(43)}`;
const VICTIM = `ik_live_0123456789abcdec_${"V".repeat(43)}`;

describe("failed-authentication limit under a concurrent burst", () => {
  let redis: Redis;
  let server: Server;
  let url: string;
  const checked: string[] = [];

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    await new Promise<void>((resolve) => redis.once("ready", () => resolve()));
    const store: ApiKeyAuthenticator = {
      async authenticate(presented: string): Promise<Caller | null> {
        checked.push(presented);
        await new Promise((r) => setTimeout(r, 150));
        return [RIGHT, RIGHT2, RIGHT3, VICTIM].includes(presented) ? { tenantId: "acme", keyId: presented.split("_")[2]! } : null;
      },
    };
    const limits = createRedisRateLimits(redis, { windowSeconds: 60, perKey: PER_KEY, perAddress: 10_000, authFailures: { perAddress: LIMIT, perKey: 10_000, windowSeconds: 600, blockSeconds: 600 } }, `burst${process.pid}${Date.now()}`);
    const app = new Koa();
    app.silent = true;
    app.use(errorMiddleware(createLogger({ level: "silent", name: "t" })));
    // A trusted proxy, so each case is its own client address.
    app.proxy = true;
    app.maxIpsCount = 1;
    app.use(requireApiKey({ keys: cacheAuthentications(store, { ttlMs: 60_000 }), limits, logger: createLogger({ level: "silent", name: "t" }) }));
    app.use((ctx) => {
      ctx.body = { ok: true };
    });
    server = app.listen(0, "127.0.0.1");
    await new Promise<void>((r) => server.once("listening", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    redis?.disconnect();
  });

  const call = (address: string, key: string) => fetch(url, { headers: { authorization: `Bearer ${key}`, "x-forwarded-for": address } }).then((r) => r.status);

  it("checks at most the limit of 60 concurrent guesses, and the right key hidden among them is not let in", async () => {
    const guesses = Array.from({ length: 60 }, (_, i) => `ik_live_${String(i).padStart(16, "0")}_${"g".repeat(43)}`);
    guesses.splice(45, 0, RIGHT); // a guess that happens to be right, late in the burst
    checked.length = 0;
    const statuses = await Promise.all(guesses.map((g) => call("203.0.113.50", g)));
    expect(checked.length).toBeLessThanOrEqual(LIMIT);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(LIMIT);
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
    // The limit's failures were spent: from there even the right key is refused now.
    expect(await call("203.0.113.50", RIGHT)).toBe(429);
  });

  it("a cold burst of one right key from one address is checked once and let in every time", async () => {
    checked.length = 0;
    const statuses = await Promise.all(Array.from({ length: 40 }, () => call("203.0.113.51", RIGHT2)));
    expect(statuses).toEqual(Array(40).fill(200));
    expect(checked).toEqual([RIGHT2]);
  });

  it("a right key's check gives its reserved attempt back: failures afterwards still get the full limit", async () => {
    const address = "203.0.113.52";
    for (let i = 0; i < 3; i++) expect(await call(address, RIGHT3)).toBe(200);
    const wrong = Array.from({ length: LIMIT }, (_, i) => `ik_live_${String(i).padStart(16, "9")}_${"w".repeat(43)}`);
    for (const g of wrong) expect(await call(address, g)).toBe(401);
    expect(await call(address, wrong[0]!)).toBe(429);
  });

  it("a key id's request budget is spent only by requests that prove its secret: a blocked address cannot drain it", async () => {
    // The key id is no secret (logs, `keys list`): 3 x the key's budget of wrong secrets from
    // one address (blocked after the first few) must leave its owner's budget untouched.
    const wrong = VICTIM.slice(0, -4) + "XXXX";
    const statuses: number[] = [];
    for (let i = 0; i < 3 * PER_KEY; i++) statuses.push(await call("203.0.113.60", wrong));
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
    expect(await call("203.0.113.61", VICTIM)).toBe(200);
    // The budget still holds for the owner: the first (checked) request counted too.
    for (let i = 1; i < PER_KEY; i++) expect(await call(`203.0.113.${62 + (i % 3)}`, VICTIM)).toBe(200);
    expect(await call("203.0.113.65", VICTIM)).toBe(429);
  });
});
