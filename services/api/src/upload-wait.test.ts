import { describe, expect, it } from "vitest";
import type { Upload } from "@intake/domain";
import { MAX_WAIT_SECONDS, parseWaitSeconds, waitUntilTerminal } from "./upload-wait.ts";

describe("the long-poll wait", () => {
  it("accepts whole seconds from 0 to the cap and refuses anything else", () => {
    expect(parseWaitSeconds(undefined)).toBe(0);
    expect(parseWaitSeconds("0")).toBe(0);
    expect(parseWaitSeconds(String(MAX_WAIT_SECONDS))).toBe(MAX_WAIT_SECONDS);
    for (const bad of ["-1", "1.5", "1e3", String(MAX_WAIT_SECONDS + 1), "abc", " 3", "0x10", "9999"]) {
      expect(() => parseWaitSeconds(bad), bad).toThrow(expect.objectContaining({ code: "invalid_wait", kind: "invalid" }));
    }
  });

  const upload = (status: Upload["status"]) => ({ status }) as Upload;

  it("answers as soon as a read shows a terminal status, reading on a growing interval", async () => {
    const reads: number[] = [];
    const started = Date.now();
    const statuses: Upload["status"][] = ["scanning", "deciding", "verified"];
    const got = await waitUntilTerminal(async () => (reads.push(Date.now() - started), upload(statuses[reads.length - 1]!)), upload("uploaded"), { seconds: 10, signal: new AbortController().signal });
    expect(got.status).toBe("verified");
    expect(reads).toHaveLength(3);
    // 200, +400, +800 ms: backoff, not a hot loop.
    expect(reads[2]!).toBeGreaterThanOrEqual(1300);
    expect(reads[2]! - reads[1]!).toBeGreaterThan(reads[1]! - reads[0]!);
  });

  it("ends at the deadline with the last status, and at once when the client goes away", async () => {
    const signal = new AbortController().signal;
    const t0 = Date.now();
    expect((await waitUntilTerminal(async () => upload("pending"), upload("pending"), { seconds: 1, signal })).status).toBe("pending");
    expect(Date.now() - t0).toBeLessThan(2500);
    const gone = new AbortController();
    setTimeout(() => gone.abort(), 50);
    const t1 = Date.now();
    let reads = 0;
    await waitUntilTerminal(async () => (reads++, upload("pending")), upload("pending"), { seconds: 10, signal: gone.signal });
    expect(Date.now() - t1).toBeLessThan(1500);
    expect(reads).toBe(0);
  });

  it("returns a terminal upload without reading again", async () => {
    let reads = 0;
    const got = await waitUntilTerminal(async () => (reads++, upload("verified")), upload("quarantined"), { seconds: 10, signal: new AbortController().signal });
    expect(got.status).toBe("quarantined");
    expect(reads).toBe(0);
  });
});
