import { describe, expect, it } from "vitest";
import { parseClamdDate, signatureFacts } from "./health.ts";

const now = new Date("2026-12-01T12:00:00Z");
const official = { engine: "ClamAV 1.0.7", signatures: "27450", signaturesDate: "Mon Nov 30 09:12:00 2026", raw: "ClamAV 1.0.7/27450/Mon Nov 30 09:12:00 2026" };

describe("the signature database's facts", () => {
  it("reads clamd's ctime date as UTC, and refuses anything else", () => {
    expect(parseClamdDate("Tue Nov 30 09:12:00 2026")?.toISOString()).toBe("2026-11-30T09:12:00.000Z");
    expect(parseClamdDate("Sat Nov  1 07:02:03 2025")?.toISOString()).toBe("2025-11-01T07:02:03.000Z");
    for (const bad of ["", "27450", "Tue Feb 30 09:12:00 2026", "2026-11-30T09:12:00Z", "Tue Nov 30 09:12:00 2026 extra"]) expect(parseClamdDate(bad)).toBeNull();
  });

  it("an official database: its version, date and age from VERSION, stale only past the threshold", () => {
    const fresh = signatureFacts(official, { now, maxAgeHours: 48, testSignaturesMarker: false, testDatabaseDate: null });
    expect(fresh).toEqual({ version: "27450", date: "2026-11-30T09:12:00.000Z", dateSource: "clamd", ageHours: 26.8, maxAgeHours: 48, stale: false, testSignaturesOnly: false });
    expect(signatureFacts(official, { now, maxAgeHours: 24, testSignaturesMarker: false, testDatabaseDate: null }).stale).toBe(true);
  });

  it("the generated test database (plain 'ClamAV 1.4.6'): test signatures, dated by its files when they are here, else of unknown age and stale", () => {
    const test = { engine: "ClamAV 1.4.6", signatures: "none", raw: "ClamAV 1.4.6" };
    const files = new Date("2026-12-01T11:00:00Z");
    expect(signatureFacts(test, { now, maxAgeHours: 48, testSignaturesMarker: true, testDatabaseDate: files })).toMatchObject({ version: null, dateSource: "test_database_files", ageHours: 1, stale: false, testSignaturesOnly: true });
    expect(signatureFacts(test, { now, maxAgeHours: 48, testSignaturesMarker: false, testDatabaseDate: null })).toMatchObject({ version: null, date: null, ageHours: null, stale: true, testSignaturesOnly: true });
  });

  it("the marker alone says test signatures, even beside an official-looking VERSION; clamd unreachable leaves the age unknown", () => {
    expect(signatureFacts(official, { now, maxAgeHours: 48, testSignaturesMarker: true, testDatabaseDate: null }).testSignaturesOnly).toBe(true);
    expect(signatureFacts(null, { now, maxAgeHours: 48, testSignaturesMarker: false, testDatabaseDate: null })).toMatchObject({ testSignaturesOnly: false, stale: true, ageHours: null });
  });
});
