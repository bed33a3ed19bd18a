import { describe, expect, it } from "vitest";
import { PROCESSING_STATUSES, UPLOAD_STATUSES } from "@intake/domain";
import { finalVerdict, scanVerdict, sizeVerdict, stageFor, typeVerdict } from "./decisions.ts";

const ALLOWED = ["image/png", "image/jpeg", "application/pdf", "application/zip", "text/plain", "application/json", "image/svg+xml",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document"];

describe("sizeVerdict", () => {
  const declared = (n: number) => ({ declaredSize: n, sizeLimit: n, storedSize: n });
  it("passes the declared size within the maximum", () => expect(sizeVerdict(10, declared(10), 100)).toBeNull());
  it("quarantines a size other than declared as size_mismatch", () => expect(sizeVerdict(11, declared(10), 100)).toMatchObject({ reason: "size_mismatch" }));
  it("quarantines above the maximum as too_large, even when declared so", () => expect(sizeVerdict(101, declared(101), 100)).toMatchObject({ reason: "too_large" }));

  describe("a size learned on arrival", () => {
    const arrived = (storedSize: number | null, sizeLimit = 50) => ({ declaredSize: null, sizeLimit, storedSize });
    it("passes the size recorded on arrival, within its limit", () => expect(sizeVerdict(50, arrived(50), 100)).toBeNull());
    it("quarantines one byte over its limit as too_large", () => expect(sizeVerdict(51, arrived(51), 100)).toMatchObject({ reason: "too_large", detail: expect.stringContaining("limit of 50") }));
    it("quarantines an empty object", () => expect(sizeVerdict(0, arrived(0), 100)).toMatchObject({ reason: "size_mismatch" }));
    it("quarantines an object that changed size after arrival (the budget was settled to the first)", () => expect(sizeVerdict(40, arrived(1), 100)).toMatchObject({ reason: "size_mismatch" }));
    it("refuses when no size was recorded (fail closed)", () => expect(sizeVerdict(10, arrived(null), 100)).toMatchObject({ reason: "size_mismatch" }));
    it("keeps the deployment maximum above its limit", () => expect(sizeVerdict(101, arrived(101, 200), 100)).toMatchObject({ reason: "too_large" }));
  });
});

describe("typeVerdict", () => {
  it("accepts a sniffed type equal to the declared one", () => expect(typeVerdict("image/png", "image/png", ALLOWED)).toBeNull());
  it("folds documented aliases (image/jpg ~ image/jpeg)", () => expect(typeVerdict("image/jpg", "image/jpeg", ALLOWED)).toBeNull());
  it("quarantines a PNG declared as PDF as type_mismatch", () =>
    expect(typeVerdict("application/pdf", "image/png", ALLOWED)).toMatchObject({ reason: "type_mismatch", detail: "declared application/pdf but the content is image/png" }));
  it("quarantines a sniffed type outside the allowlist as type_not_allowed", () =>
    expect(typeVerdict("image/png", "application/x-msdownload", ALLOWED)).toMatchObject({ reason: "type_not_allowed" }));
  it("quarantines a binary declaration without any signature", () => expect(typeVerdict("image/png", undefined, ALLOWED)).toMatchObject({ reason: "type_mismatch" }));
  it("does not accept a bare ZIP for an OOXML declaration", () =>
    expect(typeVerdict("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/zip", ALLOWED)).toMatchObject({ reason: "type_mismatch" }));
  it("leaves text formats to the content check when nothing is sniffed", () => expect(typeVerdict("text/plain", undefined, ALLOWED)).toBeNull());
  it("accepts XML for a declared SVG", () => expect(typeVerdict("image/svg+xml", "application/xml", ALLOWED)).toBeNull());
  it("quarantines a binary format declared as text", () => expect(typeVerdict("text/plain", "image/png", ALLOWED)).toMatchObject({ reason: "type_mismatch" }));
});

describe("scanVerdict", () => {
  const sha = "a".repeat(64);
  it("passes a clean scan of the whole object", () => expect(scanVerdict({ outcome: "clean", bytes: 5, sha256: sha }, { size: 5, declaredSha256: null })).toBeNull());
  it("quarantines malware with the signature name", () =>
    expect(scanVerdict({ outcome: "infected", signature: "Eicar.UNOFFICIAL", bytes: 5, sha256: sha }, { size: 5, declaredSha256: null })).toEqual({
      outcome: "quarantine", reason: "malware", detail: "clamd found Eicar.UNOFFICIAL", signature: "Eicar.UNOFFICIAL" }));
  it("quarantines unscannable content", () => expect(scanVerdict({ outcome: "unscannable", reason: "encrypted", bytes: 5, sha256: sha }, { size: 5, declaredSha256: null })).toMatchObject({ reason: "unscannable", detail: "encrypted" }));
  it("never calls a partial scan clean", () => expect(scanVerdict({ outcome: "clean", bytes: 4, sha256: sha }, { size: 5, declaredSha256: null })).toMatchObject({ reason: "size_mismatch" }));
  it("quarantines a sha256 other than declared", () => expect(scanVerdict({ outcome: "clean", bytes: 5, sha256: sha }, { size: 5, declaredSha256: "b".repeat(64) })).toMatchObject({ reason: "checksum_mismatch" }));
  it("compares a declared sha256 case-insensitively", () => expect(scanVerdict({ outcome: "clean", bytes: 5, sha256: sha }, { size: 5, declaredSha256: "A".repeat(64) })).toBeNull());
  it("lets malware win over a checksum mismatch", () =>
    expect(scanVerdict({ outcome: "infected", signature: "X", bytes: 5, sha256: sha }, { size: 5, declaredSha256: "b".repeat(64) })).toMatchObject({ reason: "malware" }));
});

describe("finalVerdict and stageFor", () => {
  it("is clean only when every finding passed", () => expect(finalVerdict(null, null)).toEqual({ outcome: "clean" }));
  it("keeps the first quarantine finding", () =>
    expect(finalVerdict(null, { outcome: "quarantine", reason: "malware", detail: "a" }, { outcome: "quarantine", reason: "invalid_content", detail: "b" })).toMatchObject({ reason: "malware" }));
  it("maps processing statuses to the stage that moves them on", () => {
    expect(["uploaded", "inspecting", "scanning", "deciding", "pending", "verified"].map((status) => stageFor({ status: status as never, declaredSize: 100, storedSize: null }))).toEqual(["inspect", "inspect", "scan", "finalize", null, null]);
  });
  it("sends an upload checked in one pass from arrival straight to the scan stage, by its declared size", () => {
    expect(["uploaded", "inspecting", "scanning", "deciding"].map((status) => stageFor({ status: status as never, declaredSize: 100, storedSize: null }, 100))).toEqual(["scan", "scan", "scan", "finalize"]);
    expect(stageFor({ status: "uploaded", declaredSize: 101, storedSize: null }, 100)).toBe("inspect");
    expect(stageFor({ status: "uploaded", declaredSize: 1, storedSize: null }, 0)).toBe("inspect");
    // A size learned on arrival routes by the recorded size; none recorded: the staged path, which refuses it.
    expect(stageFor({ status: "uploaded", declaredSize: null, storedSize: 100 }, 100)).toBe("scan");
    expect(stageFor({ status: "uploaded", declaredSize: null, storedSize: 101 }, 100)).toBe("inspect");
    expect(stageFor({ status: "uploaded", declaredSize: null, storedSize: null }, 100)).toBe("inspect");
  });
  it("has a stage for exactly the statuses the pipeline owns (the reaper skips a stuck upload without one)", () => {
    expect(UPLOAD_STATUSES.filter((status) => stageFor({ status, declaredSize: 100, storedSize: null }) !== null)).toEqual(PROCESSING_STATUSES);
  });
});
