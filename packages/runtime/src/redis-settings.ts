/**
 * Where Redis is: one server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES), and the
 * prefix every Intake key starts with (QUEUE_PREFIX). Parsed with the rest of the
 * configuration (config.ts); connections are made from it in one place
 * (@intake/pipeline redis-connections.ts).
 */
export interface RedisClusterSettings {
  /** The startup nodes: the client learns the rest of the cluster from any of them. */
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  /** rediss:// nodes: TLS to every node the cluster names. */
  tls: boolean;
}

export interface RedisSettings {
  url: string;
  prefix: string;
  /** Set when REDIS_CLUSTER_NODES is: connect with a cluster client, not to REDIS_URL. */
  cluster?: RedisClusterSettings;
}

/** QUEUE_PREFIX in cluster mode when none is set: a hash tag, so each queue's keys share a slot. */
export const DEFAULT_CLUSTER_QUEUE_PREFIX = "{intake}";

/**
 * The hash tag Redis Cluster hashes a key by: the text between the first '{' and the first
 * '}' after it, when that text is not empty (Redis Cluster specification, "Hash tags").
 * Every key Intake writes starts with the prefix, so the prefix's tag decides the slot.
 */
export function hashTagOf(prefix: string): string | null {
  const open = prefix.indexOf("{");
  if (open < 0) return null;
  const close = prefix.indexOf("}", open + 1);
  if (close < 0 || close === open + 1) return null;
  return prefix.slice(open + 1, close);
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/**
 * REDIS_CLUSTER_NODES: comma-separated host:port (or redis://[user:password@]host:port,
 * rediss:// for TLS). Credentials and TLS apply to every node the cluster names, so the
 * entries must agree on them. Returns the settings or the problems, each naming the entry.
 */
export function parseClusterNodes(value: string): { settings: RedisClusterSettings; problems: [] } | { settings: null; problems: string[] } {
  const entries = value.split(",").map((s) => s.trim());
  const problems: string[] = [];
  const nodes: RedisClusterSettings["nodes"] = [];
  const schemes = new Set<string>();
  const credentials = new Set<string>();
  let username: string | undefined;
  let password: string | undefined;
  for (const entry of entries) {
    if (!entry) {
      problems.push(`REDIS_CLUSTER_NODES: an empty entry in "${redact(value)}" (comma-separated host:port, e.g. 10.0.0.1:6379,10.0.0.2:6379)`);
      continue;
    }
    let hostPort = entry;
    let scheme = "redis";
    const url = /^([a-z]+):\/\//.exec(entry);
    if (url) {
      scheme = url[1]!;
      if (scheme !== "redis" && scheme !== "rediss") {
        problems.push(`REDIS_CLUSTER_NODES: "${redact(entry)}" must be host:port, redis:// or rediss://`);
        continue;
      }
      let parsed: URL;
      try {
        parsed = new URL(entry);
      } catch {
        problems.push(`REDIS_CLUSTER_NODES: "${redact(entry)}" is not a valid URL`);
        continue;
      }
      if ((parsed.pathname && parsed.pathname !== "/") || parsed.search) {
        // A cluster has one database (0): a /db path would be silently ignored.
        problems.push(`REDIS_CLUSTER_NODES: "${redact(entry)}" has a path or query; a cluster node is host:port only (a Redis Cluster has database 0 only)`);
        continue;
      }
      if (!parsed.port) {
        problems.push(`REDIS_CLUSTER_NODES: "${redact(entry)}" has no port`);
        continue;
      }
      hostPort = `${parsed.hostname}:${parsed.port}`;
      username = parsed.username ? decodeURIComponent(parsed.username) : undefined;
      password = parsed.password ? decodeURIComponent(parsed.password) : undefined;
      credentials.add(`${username ?? ""}\u0000${password ?? ""}`);
    } else {
      credentials.add("\u0000");
    }
    schemes.add(scheme);
    const m = HOST_PORT.exec(hostPort);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) {
      problems.push(`REDIS_CLUSTER_NODES: "${redact(entry)}" is not host:port (e.g. 10.0.0.1:6379)`);
      continue;
    }
    const host = m[1]!.startsWith("[") ? m[1]!.slice(1, -1) : m[1]!;
    nodes.push({ host, port });
  }
  if (schemes.size > 1) problems.push("REDIS_CLUSTER_NODES: the entries mix redis:// and rediss://; TLS applies to every node of the cluster");
  if (credentials.size > 1) problems.push("REDIS_CLUSTER_NODES: the entries disagree on credentials; one user and password apply to every node of the cluster");
  if (problems.length) return { settings: null, problems };
  return { settings: { nodes, ...(username ? { username } : {}), ...(password ? { password } : {}), tls: schemes.has("rediss") }, problems: [] };
}

/**
 * The cluster rule for the prefix: BullMQ's scripts touch several keys of a queue at once,
 * which a cluster refuses (CROSSSLOT) unless they hash to one slot. A hash tag in the prefix
 * puts every key of every Intake queue in the tag's slot (docs.bullmq.io/patterns/redis-cluster).
 */
export function clusterPrefixProblems(prefix: string): string[] {
  return hashTagOf(prefix)
    ? []
    : [`QUEUE_PREFIX: "${prefix}" has no hash tag, which a Redis Cluster (REDIS_CLUSTER_NODES) needs: BullMQ's scripts touch several keys of a queue at once and the cluster refuses keys of different slots (CROSSSLOT). Use a prefix with a tag, e.g. {${prefix}}, or leave QUEUE_PREFIX unset for ${DEFAULT_CLUSTER_QUEUE_PREFIX}`];
}

/** No password in an error message (the entry is quoted back to the operator). */
function redact(s: string): string {
  return s.replace(/(:\/\/[^:@/]*:)[^@/]*@/g, "$1***@");
}
