import { afterAll, describe, expect, it } from "vitest";
import { connectRedis, dataNodes, untilReady, type RedisConnection, type RedisRole } from "@intake/pipeline";
import { loadConfig } from "@intake/runtime";
import { testQueuePrefix, testRedisEnv } from "@intake/testkit";
import { LeasedBudget } from "./leased-budgets.ts";
import { createRedisRateLimits } from "./redis-rate-limits.ts";

/**
 * Leased request budgets on a real Redis, each "process" with its own connection (the API
 * processes of a deployment share nothing else). What must hold: a window never admits more
 * than its limit across processes, points a process leased but did not spend go back to
 * that window, and a block set by one process stops every other one at once, though it
 * holds a lease for the address. On the test Redis: the local server, or the cluster with
 * INTAKE_TEST_REDIS=cluster (there a block is published on one node and heard on another).
 */
const endpoint = loadConfig({ S3_BUCKET: "unused-by-the-limits", ...testRedisEnv() }).redis;
const connections: RedisConnection[] = [];
const budgets: { close(): unknown }[] = [];

async function connection(role: RedisRole = "limits"): Promise<RedisConnection> {
  const redis = connectRedis(endpoint, role);
  connections.push(redis);
  if (!(await untilReady(redis, 10_000))) throw new Error("the test Redis is not ready");
  return redis;
}

async function twoProcesses(limit: number, leaseMs?: number): Promise<[LeasedBudget, LeasedBudget, string]> {
  const prefix = testQueuePrefix("lease");
  const make = async () => {
    const b = new LeasedBudget(await connection(), { keyPrefix: prefix, limit, windowSeconds: 600, ...(leaseMs ? { leaseMs } : {}) });
    budgets.push(b);
    return b;
  };
  return [await make(), await make(), prefix];
}

afterAll(async () => {
  for (const b of budgets) b.close();
  for (const c of connections) c.disconnect();
});

/** Polls `probe` until it is true: the sweeper gives points back on its own timer. */
async function eventually(probe: () => Promise<boolean>, what: string, deadlineMs = 10_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!(await probe())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("leased request budgets across processes", () => {
  it("admits exactly the limit across two processes under concurrent load, never more", async () => {
    const [a, b] = await twoProcesses(1000);
    const answers = await Promise.all(Array.from({ length: 3000 }, (_, i) => (i % 3 === 0 ? a : b).spend("203.0.113.1")));
    expect(answers.filter((x) => x.admitted).length).toBe(1000);
    const refused = answers.find((x) => !x.admitted);
    expect(refused).toMatchObject({ admitted: false, blocked: false });
    // And the window stays full, whichever process is asked.
    expect((await a.spend("203.0.113.1")).admitted).toBe(false);
    expect((await b.spend("203.0.113.1")).admitted).toBe(false);
  });

  it("leases more than one point only where they are spent fast, and gives back what was not spent", async () => {
    const [a, b, prefix] = await twoProcesses(10_000, 100);
    const probe = await connection();
    // Concurrent requests in one process: its leases grow (1, 2, 4, ...).
    const spentByA = (await Promise.all(Array.from({ length: 300 }, () => a.spend("key1")))).filter((x) => x.admitted).length;
    expect(spentByA).toBe(300);
    // Once A's lease ends the window counts what A spent, not what it leased.
    await eventually(async () => Number(await probe.hget(`${prefix}:key1`, "n")) === 300, "A's unspent points to be given back");
    // B can spend all the rest of the window.
    let spentByB = 0;
    for (;;) {
      const batch = await Promise.all(Array.from({ length: 500 }, () => b.spend("key1")));
      const admitted = batch.filter((x) => x.admitted).length;
      spentByB += admitted;
      if (admitted < batch.length) break;
    }
    expect(spentByA + spentByB).toBe(10_000);
  });

  it("stops another process at once when one blocks an address, though it holds a lease there", async () => {
    const settings = { windowSeconds: 600, perKey: 100_000, perAddress: 100_000, authFailures: { perAddress: 2, perKey: 100, windowSeconds: 600, blockSeconds: 600 } };
    const prefix = testQueuePrefix("leaseblock");
    // Leases that would last a minute: only the announcement can make B refuse.
    const subscriberOfB = await connection("subscriber");
    const a = createRedisRateLimits(await connection(), settings, prefix, { leaseMs: 60_000 });
    const b = createRedisRateLimits(await connection(), settings, prefix, { subscriber: subscriberOfB, leaseMs: 60_000 });
    budgets.push(a, b);
    const probe = await connection();
    // PUBSUB NUMSUB counts one server's subscribers: on a cluster, ask every master.
    const subscribers = async () => (await Promise.all(dataNodes(probe).map(async (n) => Number(((await n.call("pubsub", "numsub", `${prefix}:rl:budget:addr:blocked`)) as [string, number])[1])))).reduce((a, b) => a + b, 0);
    await eventually(async () => (await subscribers()) === 1, "B's subscription");
    const who = { address: "198.51.100.77", keyId: null };
    const other = { address: "198.51.100.78", keyId: null };
    // B leases for the address (concurrent requests grow its lease past one point).
    await Promise.all(Array.from({ length: 50 }, () => b.admit(who)));
    await Promise.all(Array.from({ length: 50 }, () => b.admit(other)));
    const announced = new Promise<void>((resolve) => subscriberOfB.on("message", (_c: string, member: string) => member === who.address && resolve()));
    // Two failures in A reach the limit: A blocks the address.
    expect(await a.recordFailure(who)).toEqual({ blocked: false });
    expect(await a.recordFailure(who)).toEqual({ blocked: false });
    await expect(a.admit(who)).rejects.toMatchObject({ code: "too_many_failed_authentications" });
    await announced;
    await expect(b.admit(who)).rejects.toMatchObject({ code: "too_many_failed_authentications", retryAfterSeconds: expect.any(Number) });
    // Other addresses keep their leases and their budgets.
    await b.admit(other);
  });
});
