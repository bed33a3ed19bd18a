import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";

/**
 * Every Redis connection Intake makes is made here, from the configuration's Redis settings
 * (@intake/runtime redis-settings.ts): one server at REDIS_URL, or a Redis Cluster from
 * REDIS_CLUSTER_NODES. Callers say what the connection is for and get the options BullMQ
 * and our fail-fast callers need, on either kind.
 */
export interface RedisEndpoint {
  url: string;
  cluster?: { nodes: { host: string; port: number }[]; username?: string; password?: string; tls: boolean };
}

/** Both kinds answer the same commands; a cluster routes each to the node of its key's slot. */
export type RedisConnection = Redis | Cluster;

/**
 * - worker: BullMQ workers block on Redis and must never give up a command: BullMQ requires
 *   maxRetriesPerRequest null (it refuses a worker connection without it).
 * - producer: a caller that must learn at once that Redis is away (so SQS keeps its message,
 *   the client gets a 503): no offline queue, one retry.
 * - limits: the API's rate-limit counts, which fall back to memory rather than wait: as a
 *   producer, with auto-pipelining and the caller's command timeout.
 * - subscriber: a connection that only SUBSCRIBEs (it can do nothing else), queueing its
 *   subscribe while Redis is away so the subscription comes back with it.
 */
export type RedisRole = "worker" | "producer" | "limits" | "subscriber";

export interface RedisConnectionOptions {
  /** limits: a count Redis has not answered by then is given up (the caller falls back). */
  commandTimeoutMs?: number;
  lazyConnect?: boolean;
}

interface RoleOptions {
  /** Options of every server connection (the one server, or each cluster node). */
  server: RedisOptions;
  /** Options of the connection as a whole (the one server's too, or the cluster client's). */
  client: Pick<RedisOptions, "enableOfflineQueue" | "enableAutoPipelining" | "lazyConnect">;
}

function roleOptions(role: RedisRole, o: RedisConnectionOptions): RoleOptions {
  switch (role) {
    case "worker":
      return { server: { maxRetriesPerRequest: null }, client: {} };
    case "producer":
      return { server: { maxRetriesPerRequest: 1 }, client: { enableOfflineQueue: false } };
    case "limits":
      return { server: { maxRetriesPerRequest: 1, ...(o.commandTimeoutMs ? { commandTimeout: o.commandTimeoutMs } : {}) }, client: { enableOfflineQueue: false, enableAutoPipelining: true } };
    case "subscriber":
      return { server: { maxRetriesPerRequest: 1 }, client: { enableOfflineQueue: true } };
  }
}

export function connectRedis(endpoint: RedisEndpoint, role: RedisRole, o: RedisConnectionOptions = {}): RedisConnection {
  const { server, client } = roleOptions(role, o);
  const lazy = o.lazyConnect ? { lazyConnect: true } : {};
  if (!endpoint.cluster) return new Redis(endpoint.url, { ...server, ...client, ...lazy });
  const c = endpoint.cluster;
  const options: ClusterOptions = {
    ...client,
    ...lazy,
    // "ready" only once CLUSTER INFO says cluster_state:ok (ioredis' default, stated here
    // because the readiness checks and StageQueues.enqueue rely on it).
    enableReadyCheck: true,
    redisOptions: {
      ...server,
      ...(c.username ? { username: c.username } : {}),
      ...(c.password ? { password: c.password } : {}),
      ...(c.tls ? { tls: {} } : {}),
    },
    // With TLS the nodes are reached by the names given, not resolved to addresses first:
    // a certificate names the host (ioredis' note on AWS ElastiCache clusters with TLS).
    ...(c.tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
  };
  return new Cluster(c.nodes, options);
}

export function isCluster(redis: RedisConnection): redis is Cluster {
  return redis instanceof Cluster;
}

/**
 * The servers that hold data: the one server, or every master of the cluster. Settings
 * BullMQ depends on (maxmemory-policy, persistence) hold per server, so they are checked
 * on each; a key scan (SCAN visits one server's keys) must visit each.
 */
export function dataNodes(redis: RedisConnection): Redis[] {
  return isCluster(redis) ? redis.nodes("master") : [redis];
}

/** Resolves once the connection is ready (a cluster: once CLUSTER INFO said ok), or after `ms` anyway. */
export async function untilReady(redis: RedisConnection, ms: number): Promise<boolean> {
  if (redis.status === "ready") return true;
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      redis.off("ready", ready);
      resolve(false);
    }, ms);
    timer.unref();
    const ready = () => {
      clearTimeout(timer);
      resolve(true);
    };
    redis.once("ready", ready);
  });
}

/** Deletes every key under `prefix` on every data node (tests' "Redis restart"; never FLUSHALL). */
export async function deleteKeysUnder(redis: RedisConnection, prefix: string): Promise<number> {
  await untilReady(redis, 10_000);
  let deleted = 0;
  for (const node of dataNodes(redis)) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length === 0) continue;
      // One key per DEL: a cluster refuses a DEL of keys in different slots, even on one node.
      const batch = node.pipeline();
      for (const key of keys) batch.del(key);
      for (const [err, n] of (await batch.exec()) ?? []) if (!err) deleted += n as number;
    } while (cursor !== "0");
  }
  return deleted;
}
