import { describe, expect, it } from "vitest";
import { newUploadId } from "./upload-service.ts";

describe("upload ids", () => {
  it("start with their creation time, so ids made later sort later, and never repeat", () => {
    const start = Date.parse("2026-12-01T12:00:00Z");
    const ids = Array.from({ length: 10_000 }, (_, i) => newUploadId(new Date(start + Math.floor(i / 10))));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{44}$/);
    expect(parseInt(ids[0]!.slice(0, 12), 16)).toBe(start);
    // Within one millisecond the order is random; across milliseconds it follows the clock.
    for (let i = 10; i < ids.length; i += 10) expect(ids[i - 1]! < ids[i]!).toBe(true);
    // 128 random bits after the time: across 10,000 ids every hex digit takes every value.
    for (let d = 12; d < 44; d++) expect(new Set(ids.map((id) => id[d])).size).toBe(16);
  });
});
