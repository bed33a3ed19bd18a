import { describe, expect, it } from "vitest";
import type { Upload } from "./upload.ts";
import { entryFor, malwareEntryHolds, reusableEntry, scanContextText, signatureVersionParts, survivesSignatureChange, type VerdictCacheEntry, type VerdictCacheSettings } from "./verdict-cache.ts";

const V1 = "ClamAV 1.4.6/27431/Tue Nov 10 09:00:00 2026/rules:aaaa";
const V2 = "ClamAV 1.4.6/27432/Wed Nov 11 09:00:00 2026/rules:aaaa";
const SHA = "a".repeat(64);
const now = new Date("2026-11-12T00:00:00Z");
const settings: VerdictCacheSettings = { enabled: true, shareClean: false, malwareMaxAgeHours: 168, cleanMaxAgeHours: 168 };

const entry = (o: Partial<VerdictCacheEntry>): VerdictCacheEntry => ({ sha256: SHA, outcome: "clean", tenantId: "acme", signatureVersion: V1, scanContext: "ctx", signature: null, sourceUploadId: "u1", recordedAt: new Date(now.getTime() - 3_600_000), ...o });
const q = { sha256: SHA, tenantId: "acme", signatureVersion: V1, scanContext: "ctx" };

describe("reusableEntry: what a lookup may reuse", () => {
  it("a clean entry only under the same sha256, signature version, scan context and tenant", () => {
    expect(reusableEntry([entry({})], q, settings, now)?.sourceUploadId).toBe("u1");
    expect(reusableEntry([entry({})], { ...q, signatureVersion: V2 }, settings, now)).toBeNull();
    expect(reusableEntry([entry({})], { ...q, scanContext: "other" }, settings, now)).toBeNull();
    expect(reusableEntry([entry({})], { ...q, tenantId: "globex" }, settings, now)).toBeNull();
    expect(reusableEntry([entry({})], { ...q, sha256: "b".repeat(64) }, settings, now)).toBeNull();
    // shared clean entries (VERDICT_CACHE_SHARE_CLEAN) serve another tenant, still only for the same key
    expect(reusableEntry([entry({})], { ...q, tenantId: "globex" }, { ...settings, shareClean: true }, now)).not.toBeNull();
    expect(reusableEntry([entry({})], { ...q, tenantId: "globex", scanContext: "other" }, { ...settings, shareClean: true }, now)).toBeNull();
  });

  it("a malware entry serves every tenant, outlives a newer database, and wins over a clean entry (fail closed)", () => {
    const bad = entry({ outcome: "malware", signature: "Eicar-Test-Signature", tenantId: "globex", scanContext: "theirs", sourceUploadId: "u9" });
    expect(reusableEntry([entry({}), bad], q, settings, now)?.outcome).toBe("malware");
    expect(reusableEntry([bad], { ...q, signatureVersion: V2 }, settings, now)?.signature).toBe("Eicar-Test-Signature");
  });

  it("entries past their maximum age are not reused", () => {
    const old = new Date(now.getTime() - 200 * 3_600_000);
    expect(reusableEntry([entry({ recordedAt: old })], q, settings, now)).toBeNull();
    expect(reusableEntry([entry({ outcome: "malware", signature: "X", recordedAt: old })], q, settings, now)).toBeNull();
  });
});

describe("malwareEntryHolds: a malware entry under later signatures", () => {
  it("holds for a newer database of the same engine and rules", () => {
    expect(malwareEntryHolds(V1, V2)).toBe(true);
  });
  it("not once the database went back (a rollback may fix a false positive)", () => {
    expect(malwareEntryHolds(V2, V1)).toBe(false);
  });
  it("not once the operators' rules changed (a removed rule may be the one that matched) or the engine did", () => {
    expect(malwareEntryHolds(V1, V2.replace("rules:aaaa", "rules:bbbb"))).toBe(false);
    expect(malwareEntryHolds(V1, V2.replace("rules:aaaa", "rules:none"))).toBe(false);
    expect(malwareEntryHolds(V1, V2.replace("1.4.6", "1.5.0"))).toBe(false);
  });
  it("a test database (no version number) by its date; never across kinds of database; an unparsed version only exactly", () => {
    const t1 = "ClamAV 1.4.6/none/2026-11-10T09:00:00.000Z/rules:none";
    const t2 = "ClamAV 1.4.6/none/2026-11-11T09:00:00.000Z/rules:none";
    expect(malwareEntryHolds(t1, t2)).toBe(true);
    expect(malwareEntryHolds(t2, t1)).toBe(false);
    expect(malwareEntryHolds(t1, "ClamAV 1.4.6/27431/Tue Nov 10 09:00:00 2026/rules:none")).toBe(false);
    expect(malwareEntryHolds("ClamAV 1.4.6/27431/x", "ClamAV 1.4.6/27432/x")).toBe(false);
    expect(signatureVersionParts("ClamAV 1.4.6/27431/x")).toBeNull();
  });
  it("a signature change keeps no clean entry of another version", () => {
    expect(survivesSignatureChange({ outcome: "clean", signatureVersion: V1 }, V2)).toBe(false);
    expect(survivesSignatureChange({ outcome: "malware", signatureVersion: V1 }, V2)).toBe(true);
  });
});

describe("entryFor: which final transitions teach the cache", () => {
  const upload = (o: Partial<Upload>): Upload => ({ id: "u1", tenantId: "acme", status: "verified", verdict: "clean", reason: null, signature: null, sha256: SHA, scannerVersion: V1, scanContext: "ctx", verdictFromCache: null, ...o }) as Upload;
  it("a clean verified upload out of deciding, and a malware quarantine with its signature", () => {
    expect(entryFor(upload({}), "deciding", now)).toMatchObject({ outcome: "clean", sha256: SHA, sourceUploadId: "u1" });
    expect(entryFor(upload({ status: "quarantined", verdict: "quarantine", reason: "malware", signature: "Eicar" }), "deciding", now)).toMatchObject({ outcome: "malware", signature: "Eicar" });
  });
  it("nothing from a recheck or an override (from rechecking), a hit, a scan without the cache, or another finding", () => {
    expect(entryFor(upload({}), "rechecking", now)).toBeNull();
    expect(entryFor(upload({ signature: "Accepted.By.Override" }), "deciding", now)).toBeNull();
    expect(entryFor(upload({ verdictFromCache: "u0" }), "deciding", now)).toBeNull();
    expect(entryFor(upload({ scanContext: null }), "deciding", now)).toBeNull();
    expect(entryFor(upload({ status: "quarantined", verdict: "quarantine", reason: "image_undecodable" }), "deciding", now)).toBeNull();
    expect(entryFor(upload({ status: "quarantined", verdict: "quarantine", reason: "unscannable" }), "deciding", now)).toBeNull();
  });
});

describe("scanContextText", () => {
  it("differs with the policy's checked terms and with clamd's limits", () => {
    const limits = { maxFileSize: 1, maxScanSize: 2, maxRecursion: 3, maxStreamBytes: 4 };
    const rules = { allowedTypes: ["text/plain"], maxSize: 10 };
    const a = scanContextText({ checksDigest: "p1" }, rules, limits);
    expect(scanContextText({ checksDigest: "p2" }, rules, limits)).not.toBe(a);
    expect(scanContextText({ checksDigest: "p1" }, rules, { ...limits, maxFileSize: 9 })).not.toBe(a);
    expect(scanContextText(null, rules, limits)).not.toBe(scanContextText(null, { ...rules, maxSize: 11 }, limits));
  });
});
