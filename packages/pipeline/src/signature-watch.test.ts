import { describe, expect, it } from "vitest";
import { signatureFacts } from "./health.ts";
import { holdReasonFor, signatureVersionOf } from "./signature-watch.ts";

const now = new Date("2026-12-01T12:00:00Z");
const official = { engine: "ClamAV 1.4.6", signatures: "27441", signaturesDate: "Mon Nov 30 09:25:02 2026", raw: "ClamAV 1.4.6/27441/Mon Nov 30 09:25:02 2026" };
const testOnly = { engine: "ClamAV 1.4.6", signatures: "none", raw: "ClamAV 1.4.6" };
const facts = (v: typeof official | typeof testOnly, o: { maxAgeHours?: number; testDatabaseDate?: Date | null } = {}) =>
  signatureFacts(v, { now, maxAgeHours: o.maxAgeHours ?? 48, testSignaturesMarker: v === testOnly, testDatabaseDate: o.testDatabaseDate ?? null });

describe("holdReasonFor: may a clean result be issued with these signatures?", () => {
  const production = { maxAgeHours: 48, holdWhenStale: true, acceptTestSignatures: false };
  const development = { maxAgeHours: 48, holdWhenStale: false, acceptTestSignatures: true };

  it("issues with an official database younger than the limit, holds one just past it", () => {
    // Built Mon Nov 30 09:25:02, read at Dec 1 12:00: 26.58 hours old.
    expect(holdReasonFor(facts(official), production)).toBeNull();
    expect(holdReasonFor(facts(official, { maxAgeHours: 27 }), production)).toBeNull();
    expect(holdReasonFor(facts(official, { maxAgeHours: 26 }), production)).toBe("signatures_stale");
    // Holding is the policy's choice (HOLD_ON_STALE_SIGNATURES).
    expect(holdReasonFor(facts(official, { maxAgeHours: 26 }), { ...production, holdWhenStale: false })).toBeNull();
  });

  it("holds a database of unknown age: an unknown age is not a young one", () => {
    expect(holdReasonFor(facts(testOnly), { ...production, acceptTestSignatures: true })).toBe("signatures_stale");
  });

  it("holds test signatures only where they are not accepted, however fresh", () => {
    const fresh = facts(testOnly, { testDatabaseDate: new Date(now.getTime() - 3600_000) });
    expect(holdReasonFor(fresh, production)).toBe("test_signatures_only");
    expect(holdReasonFor(fresh, { ...production, acceptTestSignatures: true })).toBeNull();
  });

  it("development and test defaults issue as before, stale or test-only", () => {
    expect(holdReasonFor(facts(testOnly), development)).toBeNull();
    expect(holdReasonFor(facts(official, { maxAgeHours: 1 }), development)).toBeNull();
  });
});

describe("signatureVersionOf: one stable string, changed by any part", () => {
  it("names engine, database version and date, and the rule set", () => {
    expect(signatureVersionOf(official, facts(official), "0123456789abcdef")).toBe("ClamAV 1.4.6/27441/Mon Nov 30 09:25:02 2026/rules:0123456789abcdef");
    expect(signatureVersionOf(official, facts(official), null)).toBe("ClamAV 1.4.6/27441/Mon Nov 30 09:25:02 2026/rules:none");
  });

  it("gives a test database its files' date, so a rewritten one is a new version", () => {
    const a = signatureVersionOf(testOnly, facts(testOnly, { testDatabaseDate: new Date("2026-11-01T00:00:00Z") }), null);
    const b = signatureVersionOf(testOnly, facts(testOnly, { testDatabaseDate: new Date("2026-12-01T00:00:00Z") }), null);
    expect(a).toBe("ClamAV 1.4.6/none/2026-11-01T00:00:00.000Z/rules:none");
    expect(b).not.toBe(a);
  });
});
