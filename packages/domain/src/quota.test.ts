import { describe, expect, it } from "vitest";
import { LimitExceededError } from "./errors.ts";
import { quotaBreach, utcDay } from "./quota.ts";

const quotas = { pendingUploads: 5, pendingBytes: 1000, uploadsPerDay: 8 };
const noon = new Date("2026-12-01T12:00:00Z");
const today = utcDay(noon);

describe("quotaBreach", () => {
  it("allows the last place and the last byte", () => {
    expect(quotaBreach({ pendingUploads: 4, pendingBytes: 900, day: today, uploadsToday: 7 }, 100, quotas, noon)).toBeNull();
  });

  it("names the open-uploads quota and its value", () => {
    const e = quotaBreach({ pendingUploads: 5, pendingBytes: 0, day: today, uploadsToday: 5 }, 1, quotas, noon)!;
    expect(e).toBeInstanceOf(LimitExceededError);
    expect(e).toMatchObject({ code: "quota_pending_uploads", details: { quota: "pendingUploads", limit: 5, current: 5 } });
    expect(e.message).toContain("5");
    expect(e.retryAfterSeconds).toBeUndefined();
  });

  it("names the open-bytes quota one byte over", () => {
    expect(quotaBreach({ pendingUploads: 0, pendingBytes: 900, day: today, uploadsToday: 0 }, 101, quotas, noon)).toMatchObject({ code: "quota_pending_bytes", details: { limit: 1000, current: 900, requested: 101 } });
  });

  it("counts the day only on its own UTC day, and says when it resets", () => {
    const e = quotaBreach({ pendingUploads: 0, pendingBytes: 0, day: today, uploadsToday: 8 }, 1, quotas, noon)!;
    expect(e).toMatchObject({ code: "quota_uploads_per_day", details: { limit: 8, resetsAt: "2026-12-02T00:00:00.000Z" } });
    expect(e.retryAfterSeconds).toBe(12 * 3600);
    expect(quotaBreach({ pendingUploads: 0, pendingBytes: 0, day: today - 1, uploadsToday: 8 }, 1, quotas, noon)).toBeNull();
  });

  it("counts a day another process (its clock a little ahead) opened already, until that day ends", () => {
    const justBefore = new Date("2026-12-01T23:59:58Z");
    const e = quotaBreach({ pendingUploads: 0, pendingBytes: 0, day: utcDay(justBefore) + 1, uploadsToday: 8 }, 1, quotas, justBefore)!;
    expect(e).toMatchObject({ code: "quota_uploads_per_day", details: { current: 8, resetsAt: "2026-12-03T00:00:00.000Z" } });
  });
});
