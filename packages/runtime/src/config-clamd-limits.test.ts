import { describe, expect, it } from "vitest";
import { CLAMD_MAX_FILE_SIZE_CAP, loadConfig, configProblems } from "./config.ts";

const base = { S3_BUCKET: "intake-uploads" };
const MiB = 1024 * 1024;

const problemsOf = (env: Record<string, string>) => configProblems({ ...base, ...env });

describe("the largest upload is one clamd really scans", () => {
  it("defaults agree: MAX_UPLOAD_BYTES = MaxFileSize = StreamMaxLength = 1000 MiB, MaxScanSize above", () => {
    const c = loadConfig(base);
    expect(c.policy.maxSize).toBe(1000 * MiB);
    expect(c.clamd.maxFileSize).toBe(1000 * MiB);
    expect(c.clamd.maxStreamBytes).toBe(1000 * MiB);
    expect(c.clamd.maxScanSize).toBeGreaterThanOrEqual(c.policy.maxSize);
    // Multipart stays valid under the new maximum: S3's 10 000 parts at the default part size.
    expect(Math.ceil(c.policy.maxSize / c.policy.partSize)).toBeLessThanOrEqual(10_000);
    expect(c.policy.multipartThreshold).toBeLessThan(c.policy.maxSize);
  });

  it("refuses an upload limit above clamd's MaxFileSize, naming both variables", () => {
    const problems = problemsOf({ MAX_UPLOAD_BYTES: String(2 * MiB), CLAMD_MAX_FILE_SIZE: String(MiB) });
    expect(problems.join("\n")).toMatch(/MAX_UPLOAD_BYTES \(2097152\) must not exceed CLAMD_MAX_FILE_SIZE \(1048576\)/);
    // Limit itself is fine (clamd scans an object of exactly MaxFileSize bytes whole).
    expect(problemsOf({ MAX_UPLOAD_BYTES: String(MiB), CLAMD_MAX_FILE_SIZE: String(MiB) })).toEqual([]);
    // Limit plus one is not.
    expect(problemsOf({ MAX_UPLOAD_BYTES: String(MiB + 1), CLAMD_MAX_FILE_SIZE: String(MiB) })).toHaveLength(1);
  });

  it("refuses the old 5 GiB default and anything above the measured 1 GiB MaxFileSize cap", () => {
    expect(problemsOf({ MAX_UPLOAD_BYTES: String(5 * 1024 * MiB) }).join("\n")).toMatch(/MAX_UPLOAD_BYTES .* must not exceed CLAMD_MAX_FILE_SIZE/);
    expect(problemsOf({ CLAMD_MAX_FILE_SIZE: String(CLAMD_MAX_FILE_SIZE_CAP + 1) }).join("\n")).toMatch(/^CLAMD_MAX_FILE_SIZE:/m);
    expect(problemsOf({ CLAMD_MAX_FILE_SIZE: String(2_147_483_645) }).join("\n")).toMatch(/^CLAMD_MAX_FILE_SIZE:/m);
    expect(problemsOf({ CLAMD_MAX_FILE_SIZE: String(CLAMD_MAX_FILE_SIZE_CAP), MAX_UPLOAD_BYTES: String(CLAMD_MAX_FILE_SIZE_CAP) })).toEqual([]);
  });

  it("refuses a StreamMaxLength below the largest upload", () => {
    expect(problemsOf({ CLAMD_STREAM_MAX_BYTES: String(100 * MiB) }).join("\n")).toMatch(/MAX_UPLOAD_BYTES \(\d+\) must not exceed CLAMD_STREAM_MAX_BYTES \(104857600\)/);
    expect(problemsOf({ MAX_UPLOAD_BYTES: String(100 * MiB), CLAMD_STREAM_MAX_BYTES: String(100 * MiB) })).toEqual([]);
  });

  it("refuses a MaxScanSize below the largest upload or below MaxFileSize", () => {
    expect(problemsOf({ CLAMD_MAX_SCAN_SIZE: String(10 * MiB) }).join("\n")).toMatch(/CLAMD_MAX_SCAN_SIZE \(10485760\) must be at least MAX_UPLOAD_BYTES/);
    expect(problemsOf({ MAX_UPLOAD_BYTES: String(MiB), CLAMD_MAX_FILE_SIZE: String(4 * MiB), CLAMD_MAX_SCAN_SIZE: String(2 * MiB) }).join("\n")).toMatch(/CLAMD_MAX_SCAN_SIZE/);
  });
});
