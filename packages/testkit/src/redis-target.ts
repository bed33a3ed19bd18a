import { randomBytes } from "node:crypto";

/**
 * Which Redis the whole-stack tests run against: the local server (REDIS_URL, default
 * redis://127.0.0.1:6379), or with INTAKE_TEST_REDIS=cluster the three-node Redis Cluster
 * that `bash infra/bin/redis-cluster up` starts (INTAKE_TEST_REDIS_CLUSTER_NODES, default
 * 127.0.0.1:7000-7002). The harnesses (test/pipeline/support/stack.ts, test/api/harness.ts)
 * build their configuration from here, so a test goes through the same connection factory
 * and config checks as production, on either kind.
 */
export type TestRedisKind = "server" | "cluster";

export function testRedisKind(): TestRedisKind {
  const v = process.env.INTAKE_TEST_REDIS ?? "server";
  if (v !== "server" && v !== "cluster") throw new Error(`INTAKE_TEST_REDIS must be "server" or "cluster", not "${v}"`);
  return v;
}

export const TEST_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
export const TEST_REDIS_CLUSTER_NODES = process.env.INTAKE_TEST_REDIS_CLUSTER_NODES ?? "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002";

/** The configuration variables that point a process at the test Redis. */
export function testRedisEnv(): Record<string, string> {
  return testRedisKind() === "cluster" ? { REDIS_CLUSTER_NODES: TEST_REDIS_CLUSTER_NODES } : { REDIS_URL: TEST_REDIS_URL };
}

/**
 * A queue prefix of its own per test (tests share one Redis and never FLUSHALL). On the
 * cluster it is a hash tag, as the configuration requires there; a random tag also spreads
 * the test files' queues over the three masters.
 */
export function testQueuePrefix(letter: string): string {
  const p = `${letter}${randomBytes(5).toString("hex")}`;
  return testRedisKind() === "cluster" ? `{${p}}` : p;
}
