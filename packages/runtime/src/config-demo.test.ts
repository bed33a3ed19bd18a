import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

/** DEMO_PAGE: the Uppy demo page and its keyless session endpoint exist in development only. */
const base = { S3_BUCKET: "intake-uploads" };
const PROD = { ...base, NODE_ENV: "production", DATABASE_URL: "postgres://intake@db/intake" };

describe("DEMO_PAGE", () => {
  it("is on by default in development and off elsewhere", () => {
    expect(loadConfig({ ...base, NODE_ENV: "development" }).demoPage).toBe(true);
    expect(loadConfig({ ...base, NODE_ENV: "test" }).demoPage).toBe(false);
    expect(loadConfig(PROD).demoPage).toBe(false);
  });

  it("can be turned off in development and on in test", () => {
    expect(loadConfig({ ...base, NODE_ENV: "development", DEMO_PAGE: "false" }).demoPage).toBe(false);
    expect(loadConfig({ ...base, NODE_ENV: "test", DEMO_PAGE: "true" }).demoPage).toBe(true);
  });

  it("is refused in production", () => {
    expect(() => loadConfig({ ...PROD, DEMO_PAGE: "true" })).toThrow(ConfigError);
    expect(() => loadConfig({ ...PROD, DEMO_PAGE: "true" })).toThrow(/DEMO_PAGE: not allowed in production/);
    expect(loadConfig({ ...PROD, DEMO_PAGE: "false" }).demoPage).toBe(false);
  });
});
