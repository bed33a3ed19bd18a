import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DependencyUnavailableError } from "@intake/domain";
import { connectRedis, createProducerConnection, dataNodes, deleteKeysUnder, ENQUEUE_TIMEOUT_MS, isCluster, StageQueues, untilReady, type RedisConnection } from "@intake/pipeline";
import { hashTagOf, loadConfig } from "@intake/runtime";
import { freePort, TEST_REDIS_CLUSTER_NODES, testQueuePrefix, testRedisKind } from "@intake/testkit";
import { warnUnlessNoEviction } from "@intake/worker";
import { png } from "../pipeline/fixtures.ts";
import { startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

/**
 * Redis Cluster support. The first suite proves which Redis the whole-stack harness is on
 * (INTAKE_TEST_REDIS: the local server, or the three-node cluster of infra/bin/redis-cluster),
 * through the same connection factory as production. The others always use the cluster:
 * why the configuration insists on a hash tag, and what the cluster changes for the checks
 * and the fail-fast producers.
 */
const clusterRedis = () => loadConfig({ S3_BUCKET: "unused-here", REDIS_CLUSTER_NODES: TEST_REDIS_CLUSTER_NODES }).redis;

async function keysUnder(redis: RedisConnection, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of dataNodes(redis)) {
    let cursor = "0";
    do {
      const [next, found] = await node.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== "0");
  }
  return keys;
}

describe(`the whole-stack harness on the Redis INTAKE_TEST_REDIS names (${testRedisKind()})`, () => {
  let s: PipelineStack;
  let redis: RedisConnection;
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite" });
    redis = connectRedis(s.config.redis, "worker");
    await untilReady(redis, 10_000);
  });
  afterAll(async () => {
    redis?.disconnect();
    await s?.close();
  });

  it("takes an upload to its verdict, its queue keys where the configuration puts them", async () => {
    const { id } = await s.upload(png(8, 8), { contentType: "image/png" });
    const done = await s.waitFor(id, ["verified", "quarantined"], 60_000);
    expect(done.status).toBe("verified");
    const keys = await keysUnder(redis, s.config.redis.prefix);
    // The job that checked it (one pass: the scan queue) and the queues' own keys.
    expect(keys).toEqual(expect.arrayContaining([`${s.config.redis.prefix}:intake-scan:meta`, `${s.config.redis.prefix}:intake-scan:events`]));

    if (testRedisKind() === "cluster") {
      expect(isCluster(redis)).toBe(true);
      const info = String(await redis.cluster("INFO"));
      expect(info).toMatch(/^cluster_state:ok\r?$/m);
      expect(info).toMatch(/^cluster_size:3\r?$/m);
      expect(dataNodes(redis)).toHaveLength(3);
      // Every key of every queue in the one slot of the prefix's hash tag.
      const tag = hashTagOf(s.config.redis.prefix);
      expect(tag).not.toBeNull();
      const slots = new Set(await Promise.all(keys.map((k) => redis.cluster("KEYSLOT", k))));
      expect([...slots]).toEqual([await redis.cluster("KEYSLOT", tag!)]);
    } else {
      expect(isCluster(redis)).toBe(false);
      expect(await redis.info("cluster")).toMatch(/^cluster_enabled:0\r?$/m);
    }
  });
});

describe("BullMQ on the three-node Redis Cluster", () => {
  let cluster: RedisConnection;
  beforeAll(async () => {
    cluster = connectRedis(clusterRedis(), "worker");
    if (!(await untilReady(cluster, 10_000))) throw new Error(`the test Redis Cluster (${TEST_REDIS_CLUSTER_NODES}) is not ready: start it with bash infra/bin/redis-cluster up`);
  });
  afterAll(() => cluster?.disconnect());

  it("fails with CROSSSLOT under a prefix without a hash tag (what the configuration refuses), and works with one", async () => {
    const untagged = testQueuePrefix("c").replace(/[{}]/g, "");
    const bare = new Queue("intake-inspect", { connection: cluster, prefix: untagged });
    try {
      await expect(bare.add("inspect", { v: 1, uploadId: "u1" }, { jobId: "inspect-u1" })).rejects.toThrow(/CROSSSLOT/);
    } finally {
      await bare.close();
    }
    const tagged = `{${untagged}}`;
    const queue = new Queue("intake-inspect", { connection: cluster, prefix: tagged });
    try {
      await queue.add("inspect", { v: 1, uploadId: "u1" }, { jobId: "inspect-u1" });
      expect(await queue.getJobState("inspect-u1")).toBe("waiting");
    } finally {
      await queue.close();
      await deleteKeysUnder(cluster, tagged);
    }
    expect(await keysUnder(cluster, tagged)).toEqual([]);
  });

  it("checks maxmemory-policy on every master, naming the one that would evict", async () => {
    const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
    const at = (level: string) => (obj: Record<string, unknown>, msg?: string) => void lines.push({ level, obj, msg });
    const logger = { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") } as never;
    expect(await warnUnlessNoEviction(cluster, logger)).toBe("noeviction");
    expect(lines).toEqual([]);
    const second = dataNodes(cluster)[1]!;
    await second.config("SET", "maxmemory-policy", "allkeys-lru");
    try {
      expect(await warnUnlessNoEviction(cluster, logger)).toBe("allkeys-lru");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: "error", obj: { policy: "allkeys-lru", node: `${second.options.host}:${second.options.port}` } });
    } finally {
      await second.config("SET", "maxmemory-policy", "noeviction");
    }
  });

  it("makes a producer give up within the enqueue deadline when no node of the cluster answers (ingest then keeps the SQS message)", async () => {
    const dead = { url: "redis://unused", cluster: { nodes: [{ host: "127.0.0.1", port: await freePort() }], tls: false } };
    const connection = createProducerConnection(dead);
    const queues = new StageQueues({ redis: dead, prefix: "{dead}", attempts: 1, backoffMs: 10 }, connection);
    const started = Date.now();
    try {
      await expect(queues.enqueue("inspect", "u1")).rejects.toBeInstanceOf(DependencyUnavailableError);
      expect(Date.now() - started).toBeLessThan(ENQUEUE_TIMEOUT_MS + 2000);
    } finally {
      await queues.close();
    }
  });
});
