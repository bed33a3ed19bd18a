import { describe, expect, it } from "vitest";
import { ALL_EVENTS, ARRIVED_STATUSES, JOB_DRIVEN_STATUSES, RESCAN_MOVING_STATUSES, nextStatus, PROCESSING_STATUSES, SIGNATURE_WAIT_STATUSES, QUOTA_HOLDING_STATUSES, reachableFrom, releasesQuota, TERMINAL_STATUSES, UPLOAD_STATUSES, type UploadEvent, type UploadStatus } from "./upload-state.ts";

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

  it("never reaches verified without a verdict being written first (or a recheck passing)", () => {
    for (const s of UPLOAD_STATUSES) {
      if (s !== "deciding" && s !== "rechecking") expect(nextStatus(s, "promote")).toBeNull();
    }
  });

  it("allows stage re-entry for retries but no pipeline event out of a terminal status", () => {
    expect(nextStatus("inspecting", "inspect")).toBe("inspecting");
    expect(nextStatus("scanning", "scan")).toBe("scanning");
    const events: UploadEvent[] = ["arrived", "inspect", "scan", "decide", "promote", "quarantine", "expire", "abort"];
    for (const terminal of ["verified", "quarantined", "expired", "aborted"] as const) {
      for (const e of events) expect(nextStatus(terminal, e)).toBeNull();
    }
  });

  it("releases only a quarantined upload, into a recheck that ends verified or quarantined", () => {
    for (const s of UPLOAD_STATUSES) expect(nextStatus(s, "release")).toBe(s === "quarantined" ? "rechecking" : null);
    expect(nextStatus("rechecking", "promote")).toBe("verified");
    expect(nextStatus("rechecking", "quarantine")).toBe("quarantined");
    // A recheck is no way back into the pipeline's stages.
    for (const e of ["arrived", "inspect", "scan", "decide", "expire", "abort", "release"] as const) expect(nextStatus("rechecking", e)).toBeNull();
  });

  it("gives a tenant's quota back once: when the pipeline first ends, never again after a release", () => {
    expect(QUOTA_HOLDING_STATUSES).toEqual(["pending", "uploaded", "inspecting", "scanning", "deciding", "held"]);
    expect(releasesQuota("inspecting", "held")).toBe(false);
    expect(releasesQuota("held", "inspecting")).toBe(false);
    expect(releasesQuota("deciding", "quarantined")).toBe(true);
    expect(releasesQuota("pending", "expired")).toBe(true);
    expect(releasesQuota("quarantined", "rechecking")).toBe(false);
    expect(releasesQuota("rechecking", "verified")).toBe(false);
    expect(releasesQuota("rechecking", "quarantined")).toBe(false);
    expect(releasesQuota("uploaded", "inspecting")).toBe(false);
  });

  it("holds a clean result only before a verdict, and resumes a held upload only into a fresh check", () => {
    for (const s of UPLOAD_STATUSES) expect(nextStatus(s, "hold")).toBe(s === "inspecting" || s === "scanning" ? "held" : null);
    for (const s of UPLOAD_STATUSES) expect(nextStatus(s, "resume")).toBe(s === "held" ? "inspecting" : null);
    // Nothing leaves held but resume: no verdict, no promotion, no expiry straight from it.
    for (const e of ALL_EVENTS.filter((e) => e !== "resume")) expect(nextStatus("held", e)).toBeNull();
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
    // A held upload waits for signatures, not for a job: the reaper leaves it alone.
    expect(JOB_DRIVEN_STATUSES).toEqual(["uploaded", "inspecting", "scanning", "deciding", "rechecking"]);
    expect(SIGNATURE_WAIT_STATUSES).toEqual(["held"]);
    expect(ARRIVED_STATUSES).toEqual(["uploaded", "inspecting", "scanning", "deciding", "verified", "quarantined", "held"]);
    expect(reachableFrom("pending")).toEqual(UPLOAD_STATUSES.filter((s) => s !== "rechecking" && s !== "quarantining"));
    expect(reachableFrom("pending", ALL_EVENTS)).toEqual(UPLOAD_STATUSES);
    expect(reachableFrom("verified")).toEqual(["verified"]);
    expect(reachableFrom("quarantined", ALL_EVENTS)).toEqual(["verified", "quarantined", "rechecking", "quarantining"]);
    expect(reachableFrom("verified", ALL_EVENTS)).toEqual(["verified", "quarantined", "rechecking", "quarantining"]);
    expect(RESCAN_MOVING_STATUSES).toEqual(["quarantining"]);
  });

  it("moves a verified upload matched on rescan through quarantining to quarantined, and nothing else out of quarantining", () => {
    for (const s of UPLOAD_STATUSES) expect(nextStatus(s, "rescan_match")).toBe(s === "verified" ? "quarantining" : null);
    for (const s of UPLOAD_STATUSES) expect(nextStatus(s, "rescan_quarantine")).toBe(s === "quarantining" ? "quarantined" : null);
    for (const s of UPLOAD_STATUSES) expect(nextStatus(s, "rescan_pass")).toBe(s === "verified" ? "verified" : null);
    // No promotion, release or second verdict from the middle of a move.
    for (const e of ALL_EVENTS.filter((e) => e !== "rescan_quarantine")) expect(nextStatus("quarantining", e)).toBeNull();
    // Not terminal (the long-poll waits through it), not job-driven for the reaper (the rescan finishes it).
    expect(TERMINAL_STATUSES).not.toContain("quarantining");
    expect(JOB_DRIVEN_STATUSES).not.toContain("quarantining");
  });

  it("a rescan neither takes a place in the tenant's quotas nor gives one back", () => {
    expect(QUOTA_HOLDING_STATUSES).not.toContain("quarantining");
    expect(releasesQuota("verified", "quarantining")).toBe(false);
    expect(releasesQuota("quarantining", "quarantined")).toBe(false);
    expect(releasesQuota("verified", "verified")).toBe(false);
  });
});
