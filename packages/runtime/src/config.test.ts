import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, loadDatabaseConfig } from "./config.ts";

const base = { S3_BUCKET: "intake-uploads" };

describe("loadConfig", () => {
  it("fills the embedded development defaults", () => {
    const c = loadConfig(base);
    expect(c.database).toMatchObject({ client: "sqlite" });
    expect(c.http.port).toBe(3000);
    expect(c.policy.urlTtlSeconds).toBe(600);
    expect(c.policy.maxUrlTtlSeconds).toBe(3600);
    expect(c.policy.allowedTypes).toContain("image/png");
    expect(c.worker.roles).toEqual(["all"]);
  });

  it("mirrors clamd's StreamMaxLength as infra/clamd derives it, unless limits.env says otherwise", () => {
    expect(loadConfig(base).clamd.maxStreamBytes).toBe(1000 * 1024 * 1024);
    expect(loadConfig({ ...base, MAX_UPLOAD_BYTES: "1048576" }).clamd.maxStreamBytes).toBe(1048576);
    expect(loadConfig({ ...base, MAX_UPLOAD_BYTES: "5000", CLAMD_STREAM_MAX_BYTES: "6000" }).clamd.maxStreamBytes).toBe(6000);
  });

  it("names the storage behind S3_ENDPOINT (AWS unless told otherwise) and refuses an unknown one", () => {
    expect(loadConfig(base).storage.kind).toBe("aws");
    expect(loadConfig({ ...base, STORAGE_KIND: "ceph-rgw" }).storage.kind).toBe("ceph-rgw");
    expect(() => loadConfig({ ...base, STORAGE_KIND: "minio" })).toThrow(/STORAGE_KIND/);
  });

  it("keeps SQLite's :memory: as the in-memory database instead of a file of that name", () => {
    expect(loadConfig({ ...base, SQLITE_PATH: ":memory:" }).database).toEqual({ client: "sqlite", filename: ":memory:" });
  });

  it("refuses DEV_API_KEY in production, for the API and the keys command alike", () => {
    const prod = { ...base, NODE_ENV: "production", DATABASE_URL: "postgres://u@db/intake", DEV_API_KEY: "my-dev-seed-123" };
    expect(() => loadConfig(prod)).toThrow(/DEV_API_KEY: not allowed in production/);
    expect(() => loadDatabaseConfig(prod)).toThrow(/DEV_API_KEY: not allowed in production/);
    expect(loadConfig({ ...prod, NODE_ENV: "development" }).devApiKey).toBe("my-dev-seed-123");
  });

  it("uses PostgreSQL when DATABASE_URL is set", () => {
    expect(loadConfig({ ...base, DATABASE_URL: "postgres://u@db/intake" }).database).toEqual({ client: "pg", url: "postgres://u@db/intake", poolMax: 10 });
  });

  it("names every bad or missing variable in one error", () => {
    try {
      loadConfig({ PORT: "eighty", REDIS_URL: "http://x", UPLOAD_URL_TTL_SECONDS: "99999" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join("\n");
      expect(problems).toMatch(/^S3_BUCKET:/m);
      expect(problems).toMatch(/^PORT:/m);
      expect(problems).toMatch(/^REDIS_URL:/m);
      expect(problems).toMatch(/^UPLOAD_URL_TTL_SECONDS:/m);
    }
  });

  it("checks rules that span variables and roles", () => {
    expect(() => loadConfig({ ...base, UPLOAD_URL_TTL_SECONDS: "1200", MAX_UPLOAD_URL_TTL_SECONDS: "600" })).toThrow(/UPLOAD_URL_TTL_SECONDS: must not exceed/);
    expect(() => loadConfig({ ...base, WORKER_ROLES: "scan,bake" })).toThrow(/unknown role bake/);
    expect(() => loadConfig({ ...base, NODE_ENV: "production" })).toThrow(/DATABASE_URL: required in production/);
  });

  it("treats empty variables as unset", () => {
    expect(loadConfig({ ...base, PORT: "" }).http.port).toBe(3000);
  });
});
