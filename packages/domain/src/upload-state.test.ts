import { describe, expect, it } from "vitest";
import { ARRIVED_STATUSES, nextStatus, PROCESSING_STATUSES, reachableFrom, TERMINAL_STATUSES, UPLOAD_STATUSES, type UploadEvent, type UploadStatus } from "./upload-state.ts";

describe("upload state machine", () => {
  it("follows the happy path to verified", () => {
    const path: [UploadEvent, UploadStatus][] = [["arrived", "uploaded"], ["inspect", "inspecting"], ["scan", "scanning"], ["decide", "deciding"], ["promote", "verified"]];
    let s: UploadStatus = "pending";
    for (const [event, expected] of path) {
      s = nextStatus(s, event)!;
      expect(s).toBe(expected);
    }
  });

  it("lets inspection decide directly (a type mismatch needs no scan)", () => {
    expect(nextStatus("inspecting", "decide")).toBe("deciding");
    expect(nextStatus("deciding", "quarantine")).toBe("quarantined");
  });

  it("never reaches verified without a verdict being written first", () => {
    for (const s of UPLOAD_STATUSES) {
      if (s !== "deciding") expect(nextStatus(s, "promote")).toBeNull();
    }
  });

  it("allows stage re-entry for retries but no way out of a terminal status", () => {
    expect(nextStatus("inspecting", "inspect")).toBe("inspecting");
    expect(nextStatus("scanning", "scan")).toBe("scanning");
    const events: UploadEvent[] = ["arrived", "inspect", "scan", "decide", "promote", "quarantine", "expire", "abort"];
    for (const terminal of ["verified", "quarantined", "expired", "aborted"] as const) {
      for (const e of events) expect(nextStatus(terminal, e)).toBeNull();
    }
  });

  it("only expires or aborts uploads whose object has not arrived", () => {
    expect(nextStatus("pending", "expire")).toBe("expired");
    expect(nextStatus("uploaded", "expire")).toBeNull();
    expect(nextStatus("scanning", "abort")).toBeNull();
  });

  it("derives the status lists the rest of the system uses from the table", () => {
    // Written out here, not recomputed: a transition added to the table that changes a list
    // must change this expectation too.
    expect(TERMINAL_STATUSES).toEqual(["verified", "quarantined", "expired", "aborted"]);
    expect(PROCESSING_STATUSES).toEqual(["uploaded", "inspecting", "scanning", "deciding"]);
    expect(ARRIVED_STATUSES).toEqual(["uploaded", "inspecting", "scanning", "deciding", "verified", "quarantined"]);
    expect(reachableFrom("pending")).toEqual(UPLOAD_STATUSES);
    expect(reachableFrom("verified")).toEqual(["verified"]);
  });
});
