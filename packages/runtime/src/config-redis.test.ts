import { describe, expect, it } from "vitest";
import { configProblems, loadConfig } from "./config.ts";
import { hashTagOf } from "./redis-settings.ts";

const base = { S3_BUCKET: "intake-uploads" };
const NODES = "10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379";

describe("Redis settings", () => {
  it("connects to one server at REDIS_URL under the prefix 'intake' by default", () => {
    const c = loadConfig(base);
    expect(c.redis).toEqual({ url: "redis://127.0.0.1:6379", prefix: "intake" });
  });

  it("takes a cluster's startup nodes from REDIS_CLUSTER_NODES, with a hash-tagged default prefix", () => {
    const c = loadConfig({ ...base, REDIS_CLUSTER_NODES: ` ${NODES.replaceAll(",", " , ")} ` });
    expect(c.redis.cluster).toEqual({ nodes: [{ host: "10.0.0.1", port: 6379 }, { host: "10.0.0.2", port: 6379 }, { host: "10.0.0.3", port: 6379 }], tls: false });
    expect(c.redis.prefix).toBe("{intake}");
    expect(hashTagOf(c.redis.prefix)).toBe("intake");
  });

  it("accepts host names, IPv6 and redis(s):// nodes whose credentials and TLS agree", () => {
    const c = loadConfig({ ...base, REDIS_CLUSTER_NODES: "rediss://app:s%40cret@redis-0.redis:6380,rediss://app:s%40cret@[fd00::2]:6380" });
    expect(c.redis.cluster).toEqual({ nodes: [{ host: "redis-0.redis", port: 6380 }, { host: "fd00::2", port: 6380 }], username: "app", password: "s@cret", tls: true });
  });

  it("keeps a prefix that has a hash tag, wherever the tag sits", () => {
    expect(loadConfig({ ...base, REDIS_CLUSTER_NODES: NODES, QUEUE_PREFIX: "{acme}" }).redis.prefix).toBe("{acme}");
    expect(loadConfig({ ...base, REDIS_CLUSTER_NODES: NODES, QUEUE_PREFIX: "acme-{intake}" }).redis.prefix).toBe("acme-{intake}");
    // Harmless on one server (the same key names as on a cluster).
    expect(loadConfig({ ...base, QUEUE_PREFIX: "{intake}" }).redis.prefix).toBe("{intake}");
  });

  it("refuses a cluster whose prefix has no hash tag, saying why and what to set", () => {
    const problems = configProblems({ ...base, REDIS_CLUSTER_NODES: NODES, QUEUE_PREFIX: "intake" }).join("\n");
    expect(problems).toMatch(/^QUEUE_PREFIX: "intake" has no hash tag/m);
    expect(problems).toMatch(/CROSSSLOT/);
    expect(problems).toMatch(/\{intake\}/);
  });

  it("refuses prefixes whose braces make no hash tag, or more than one", () => {
    for (const prefix of ["{}intake", "intake{", "in}take", "{a}{b}", "{a{b}}", "{A}", "{in take}", "{a:b}"]) {
      expect(configProblems({ ...base, REDIS_CLUSTER_NODES: NODES, QUEUE_PREFIX: prefix }).join("\n"), prefix).toMatch(/^QUEUE_PREFIX:/m);
    }
  });

  it("names each bad cluster node and never quotes a password back", () => {
    const cases: [string, RegExp][] = [
      ["10.0.0.1", /"10\.0\.0\.1" is not host:port/],
      ["10.0.0.1:0", /"10\.0\.0\.1:0" is not host:port/],
      ["10.0.0.1:65536", /"10\.0\.0\.1:65536" is not host:port/],
      ["10.0.0.1:6379,,10.0.0.2:6379", /an empty entry/],
      ["http://10.0.0.1:6379", /must be host:port, redis:\/\/ or rediss:\/\//],
      ["redis://10.0.0.1", /has no port/],
      ["redis://10.0.0.1:6379/2", /has a path or query/],
      ["redis://10.0.0.1:6379,rediss://10.0.0.2:6379", /mix redis:\/\/ and rediss:\/\//],
      ["redis://a:one@10.0.0.1:6379,redis://a:two@10.0.0.2:6379", /disagree on credentials/],
      ["redis://a:hunter2@10.0.0.1:6379/0", /has a path/],
    ];
    for (const [nodes, problem] of cases) {
      const problems = configProblems({ ...base, REDIS_CLUSTER_NODES: nodes }).join("\n");
      expect(problems, nodes).toMatch(/^REDIS_CLUSTER_NODES: /m);
      expect(problems, nodes).toMatch(problem);
      expect(problems, nodes).not.toContain("hunter2");
    }
  });

  it("refuses REDIS_URL and REDIS_CLUSTER_NODES together: which one is meant would be a guess", () => {
    expect(configProblems({ ...base, REDIS_URL: "redis://10.0.0.9:6379", REDIS_CLUSTER_NODES: NODES }).join("\n")).toMatch(/REDIS_URL and REDIS_CLUSTER_NODES: set one, not both/);
  });
});
