import { describe, expect, it } from "vitest";
import { copyConfirmed, decideFinalize, needsScannedMd5, needsStagedHash, promotionOutcome, stagingKey, verifiedContentType, type FinalizeRow } from "./finalize-decision.ts";

const CHECKED = "5eb63bbbe01eeed093cb22bb8f5acdc3";
const SHA = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
const row = (o: Partial<FinalizeRow> = {}): FinalizeRow => ({ id: "u1", tenantId: "acme", verdict: "clean", checkedETag: CHECKED, sha256: SHA, scannedMd5: null, ...o });

describe("decideFinalize", () => {
  it("promotes a clean upload whose pending object still has the checked ETag", () => {
    expect(decideFinalize(row(), { pending: { size: 11, eTag: CHECKED } })).toEqual({ kind: "promote", target: "verified/acme/u1", size: 11 });
  });

  it("keeps a quarantine verdict, and never promotes without a checked ETag or with another ETag", () => {
    expect(decideFinalize(row({ verdict: "quarantine" }), { pending: { size: 11, eTag: CHECKED } })).toEqual({ kind: "quarantine", target: "quarantine/acme/u1", size: 11, findings: {} });
    const noETag = decideFinalize(row({ checkedETag: null }), { pending: { size: 11, eTag: CHECKED } });
    expect(noETag).toEqual({ kind: "quarantine", target: "quarantine/acme/u1", size: 11, findings: expect.objectContaining({ verdict: "quarantine", reason: "scan_error" }) });
    // No discard of verified/: only confirmed copies ever reach it, and removing one could
    // undo a concurrent run that is promoting the checked bytes right now.
    const replaced = decideFinalize(row(), { pending: { size: 11, eTag: "0".repeat(32) } });
    expect(replaced).toEqual({ kind: "quarantine", target: "quarantine/acme/u1", size: 11, findings: expect.objectContaining({ reason: "checksum_mismatch" }) });
    // A pending object without an ETag is not the checked one either.
    expect(decideFinalize(row(), { pending: { size: 11, eTag: null } })).toMatchObject({ kind: "quarantine", findings: { reason: "checksum_mismatch" } });
  });

  it("finishes what an earlier attempt moved: a confirmed verified copy, or a quarantined one with the reason it recorded", () => {
    expect(decideFinalize(row(), { pending: null, verified: { size: 11, eTag: CHECKED }, quarantined: null })).toEqual({ kind: "settle", event: "promote", findings: { finalKey: "verified/acme/u1" } });
    const q = decideFinalize(row(), { pending: null, verified: null, quarantined: { size: 11, eTag: "x", metadata: { reason: "checksum_mismatch", "reason-detail": "replaced" } } });
    expect(q).toEqual({ kind: "settle", event: "quarantine", findings: { verdict: "quarantine", reason: "checksum_mismatch", reasonDetail: "replaced", signature: null, finalKey: "quarantine/acme/u1" } });
    // The row's own quarantine verdict is kept as it is.
    expect(decideFinalize(row({ verdict: "quarantine" }), { pending: null, verified: null, quarantined: { size: 1, eTag: "x" } })).toEqual({ kind: "settle", event: "quarantine", findings: { finalKey: "quarantine/acme/u1" } });
  });

  it("never settles as promoted on a verified copy that is not the checked version, and removes it", () => {
    const d = decideFinalize(row(), { pending: null, verified: { size: 68, eTag: "44d88612fea8a8f36de82e1278abb02f" }, quarantined: null });
    expect(d).toMatchObject({ kind: "vanished", findings: { reason: "scan_error" }, discard: "verified/acme/u1" });
  });
});

describe("promotionOutcome and copyConfirmed", () => {
  const decision = { target: "verified/acme/u1", staging: stagingKey({ tenantId: "acme", id: "u1" }, "run1"), size: 11 };

  it("promotes on a copy with the checked ETag", () => {
    expect(promotionOutcome(row(), decision, { eTag: CHECKED, sha256: null })).toEqual({ kind: "promoted", findings: { finalKey: "verified/acme/u1" } });
  });

  it("quarantines, removing the copy, when storage copied another version (it ignored x-amz-copy-source-if-match)", () => {
    const out = promotionOutcome(row(), decision, { eTag: "44d88612fea8a8f36de82e1278abb02f", sha256: null });
    // What is removed is the run's staging copy: verified/ never held it.
    expect(out).toMatchObject({ kind: "quarantine", target: "quarantine/acme/u1", discard: "quarantine/acme/u1.promoting-run1", findings: { reason: "checksum_mismatch" } });
  });

  it("quarantines without a copy to remove when storage refused the copy (412)", () => {
    const out = promotionOutcome(row(), decision, null);
    expect(out).toMatchObject({ kind: "quarantine", findings: { reason: "checksum_mismatch" } });
    expect("discard" in out && out.discard).toBeFalsy();
  });

  it("lets a storage-computed SHA-256 decide, both ways", () => {
    expect(copyConfirmed(row(), { eTag: "opaque-kms-etag", sha256: SHA })).toBe(true);
    // Same ETag but another SHA-256: different bytes (an MD5 collision), not confirmed.
    expect(copyConfirmed(row(), { eTag: CHECKED, sha256: "0".repeat(64) })).toBe(false);
    expect(copyConfirmed(row({ sha256: null }), { eTag: CHECKED, sha256: SHA })).toBe(false);
  });

  it("confirms a multipart object's copy by its kept '-N' ETag (Ceph RGW) or by the scanned MD5 (fauxqs, AWS S3)", () => {
    const mp = row({ checkedETag: "42d33973926db3ebf8f1b066200706bb-2", scannedMd5: "6031a974921ea15a3973458b72a0d24b" });
    expect(copyConfirmed(mp, { eTag: "42d33973926db3ebf8f1b066200706bb-2", sha256: null })).toBe(true);
    expect(copyConfirmed(mp, { eTag: "6031a974921ea15a3973458b72a0d24b", sha256: null })).toBe(true);
    expect(copyConfirmed(mp, { eTag: "44d88612fea8a8f36de82e1278abb02f", sha256: null })).toBe(false);
    // Without the scanned MD5 a recomputed ETag proves nothing.
    expect(copyConfirmed({ ...mp, scannedMd5: null }, { eTag: "6031a974921ea15a3973458b72a0d24b", sha256: null })).toBe(false);
  });

  it("asks for the staging copy's SHA-256 only where an ETag matched and storage gave none", () => {
    expect(needsStagedHash(row(), { eTag: CHECKED, sha256: null })).toBe(true);
    // An MD5 collision has the checked ETag: once hashed, the SHA-256 decides.
    expect(copyConfirmed(row(), { eTag: CHECKED, sha256: "f".repeat(64) })).toBe(false);
    expect(needsStagedHash(row(), { eTag: "0".repeat(32), sha256: null })).toBe(false);
    expect(needsStagedHash(row(), { eTag: CHECKED, sha256: SHA })).toBe(false);
  });

  it("confirms nothing without a checked ETag or a copy ETag", () => {
    expect(copyConfirmed(row({ checkedETag: null }), { eTag: CHECKED, sha256: null })).toBe(false);
    expect(copyConfirmed(row(), { eTag: null, sha256: null })).toBe(false);
  });
});

describe("needsScannedMd5 and verifiedContentType", () => {
  it("asks for the scan's MD5 only where the ETag is not one", () => {
    expect(needsScannedMd5(CHECKED)).toBe(false);
    expect(needsScannedMd5("42d33973926db3ebf8f1b066200706bb-2")).toBe(true);
    expect(needsScannedMd5("opaque")).toBe(true);
  });

  it("serves the declared type in canonical form, never the sniffer's looser name", () => {
    expect(verifiedContentType({ declaredType: "image/svg+xml" })).toBe("image/svg+xml");
    expect(verifiedContentType({ declaredType: "IMAGE/JPG; charset=x" })).toBe("image/jpeg");
  });
});
