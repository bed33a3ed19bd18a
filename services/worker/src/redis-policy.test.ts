import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, waitFor } from "@intake/testkit";
import { warnUnlessNoEviction, warnUnlessPersistent } from "./worker.ts";

function capture() {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg });
  return { lines, logger: { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") } as never };
}

describe("the worker's Redis eviction-policy check, against a real redis-server", () => {
  let server: ChildProcess;
  let redis: Redis;
  beforeAll(async () => {
    const port = await freePort();
    // Its own directory: the persistence test turns AOF on, which writes files there.
    const dir = mkdtempSync(join(tmpdir(), "intake-redis-policy-"));
    server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--maxmemory-policy", "allkeys-lru"], { stdio: "ignore" });
    redis = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null });
    redis.on("error", () => undefined); // the first connects race the server's start
    await waitFor(() => redis.connect().then(() => true, () => false), { timeoutMs: 5000, intervalMs: 100, message: `the private redis-server on port ${port} to accept connections` });
  });
  afterAll(async () => {
    redis?.disconnect();
    server?.kill("SIGTERM");
    if (server && server.exitCode === null) await once(server, "exit");
  });

  it("says loudly that an evicting Redis loses queued jobs", async () => {
    const { lines, logger } = capture();
    expect(await warnUnlessNoEviction(redis, logger)).toBe("allkeys-lru");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "error", obj: { policy: "allkeys-lru" } });
    expect(lines[0]!.msg).toMatch(/not noeviction.*EVICT queued jobs/);
  });

  it("stays quiet when the policy is noeviction", async () => {
    await redis.config("SET", "maxmemory-policy", "noeviction");
    const { lines, logger } = capture();
    expect(await warnUnlessNoEviction(redis, logger)).toBe("noeviction");
    expect(lines).toEqual([]);
  });

  it("says loudly that a Redis persisting nothing loses queued jobs on a restart, and stays quiet with AOF on", async () => {
    const { lines, logger } = capture();
    expect(await warnUnlessPersistent(redis, logger)).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "error", obj: { appendonly: "no" } });
    expect(lines[0]!.msg).toMatch(/persists nothing.*appendonly yes/);
    await redis.config("SET", "appendonly", "yes");
    const quiet = capture();
    expect(await warnUnlessPersistent(redis, quiet.logger)).toBe(true);
    expect(quiet.lines).toEqual([]);
    await redis.config("SET", "appendonly", "no");
  });

  it("warns that it could not check when CONFIG is refused (managed Redis)", async () => {
    await redis.call("ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", "-config");
    const limited = new Redis({ port: redis.options.port!, host: "127.0.0.1", username: "limited", password: "pw" });
    try {
      const { lines, logger } = capture();
      expect(await warnUnlessNoEviction(limited, logger)).toBeNull();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: "warn" });
      expect(lines[0]!.msg).toMatch(/make sure it is noeviction/);
    } finally {
      limited.disconnect();
    }
  });
});
