import { describe, expect, it } from "vitest";
import { loadConfig, configProblems } from "./config.ts";

const base = { S3_BUCKET: "intake-uploads" };

const problemsOf = (env: Record<string, string>) => configProblems({ ...base, ...env });

describe("the reaper's stuck threshold against clamd's no-progress timeout", () => {
  it("refuses a stuck threshold at or below the scan timeout, naming both settings", () => {
    // The settings of the incident: a 20 s verdict took 130 s after eleven re-queues.
    const below = problemsOf({ STUCK_AFTER_SECONDS: "10", CLAMD_TIMEOUT_MS: "20000" });
    expect(below).toHaveLength(1);
    expect(below[0]).toMatch(/STUCK_AFTER_SECONDS \(10 s\).*CLAMD_TIMEOUT_MS \(20000 ms\)/);
    // Equal is a contradiction too: the reaper would look exactly when clamd may still answer.
    expect(problemsOf({ STUCK_AFTER_SECONDS: "330", CLAMD_TIMEOUT_MS: "330000" })).toHaveLength(1);
    // Against the default timeout (330 s) as well.
    expect(problemsOf({ STUCK_AFTER_SECONDS: "300" })[0]).toMatch(/CLAMD_TIMEOUT_MS \(330000 ms\)/);
  });

  it("accepts a threshold above the timeout, and the defaults", () => {
    expect(problemsOf({ STUCK_AFTER_SECONDS: "331", CLAMD_TIMEOUT_MS: "330000" })).toEqual([]);
    expect(problemsOf({ STUCK_AFTER_SECONDS: "10", CLAMD_TIMEOUT_MS: "9999" })).toEqual([]);
    const c = loadConfig(base);
    expect(c.reaper.stuckAfterSeconds * 1000).toBeGreaterThan(c.clamd.timeoutMs);
  });
});

describe("the age at which the reaper may sweep a staging copy", () => {
  it("defaults to twice the stuck threshold, at least an hour", () => {
    expect(loadConfig(base).reaper.stagingSweepAfterSeconds).toBe(3600); // 2 × 900 s is less
    expect(loadConfig({ ...base, STUCK_AFTER_SECONDS: "2400" }).reaper.stagingSweepAfterSeconds).toBe(4800);
    expect(loadConfig({ ...base, STUCK_AFTER_SECONDS: "30", CLAMD_TIMEOUT_MS: "20000", STAGING_SWEEP_AFTER_SECONDS: "30" }).reaper.stagingSweepAfterSeconds).toBe(30);
  });

  it("refuses an age below the stuck threshold, naming both settings", () => {
    const below = problemsOf({ STUCK_AFTER_SECONDS: "900", STAGING_SWEEP_AFTER_SECONDS: "899" });
    expect(below).toHaveLength(1);
    expect(below[0]).toMatch(/STAGING_SWEEP_AFTER_SECONDS \(899 s\).*STUCK_AFTER_SECONDS \(900 s\)/);
    expect(problemsOf({ STUCK_AFTER_SECONDS: "900", STAGING_SWEEP_AFTER_SECONDS: "900" })).toEqual([]);
  });
});
