import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { UPLOAD_STATUSES, TERMINAL_STATUSES, type UploadStatus } from "@intake/domain";
import { parseStagingKey, stagingKey } from "./finalize-decision.ts";
import { stagingCopyFate } from "./staging-sweep.ts";

const settings = { minAgeSeconds: 3600, backstopSeconds: 7 * 86_400 };
const now = new Date("2030-01-10T00:00:00Z");
const ago = (s: number) => new Date(now.getTime() - s * 1000);
const row = (status: UploadStatus, o: { tenantId?: string; finalKey?: string | null } = {}) => ({ tenantId: "acme", status, finalKey: "verified/acme/u1", ...o });

describe("parseStagingKey", () => {
  it("names the upload of every key stagingKey makes", () => {
    const key = stagingKey({ tenantId: "acme_Co-1", id: "0193abcdef0123456789abcdef0123" }, randomUUID());
    expect(parseStagingKey(key)).toEqual({ tenantId: "acme_Co-1", uploadId: "0193abcdef0123456789abcdef0123" });
  });

  it("refuses final keys and everything that merely looks like a staging key", () => {
    const run = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
    for (const key of [
      "quarantine/acme/u1", // the final quarantined object
      "verified/acme/u1",
      `verified/acme/u1.promoting-${run}`, // another key space
      `pending/acme/u1.promoting-${run}`,
      `quarantine/acme/u1.promoting-${run}.bak`, // something after the run
      `quarantine/acme/u1.promoting-${run}/x`,
      `quarantine/acme/u1.promoting-${run.toUpperCase()}`, // randomUUID is lowercase
      `quarantine/acme/u1.promoting-${run.slice(0, -1)}`, // one digit short
      `quarantine/acme/u1.promoting-${run}0`, // one digit more
      `quarantine/acme/u1.promoting-`,
      `quarantine/acme/u1.promoting-not-a-uuid`,
      `quarantine/acme/sub/u1.promoting-${run}`, // deeper than tenant/id
      `quarantine/u1.promoting-${run}`, // no tenant
      `quarantine/acme/.promoting-${run}`, // no upload id
      `quarantine/acme/u1.promoting-x.promoting-${run}`, // an id that is not one
      `quarantine/ac me/u1.promoting-${run}`,
      `quarantine/acme/u1%2epromoting-${run}`, // encoded
      `xquarantine/acme/u1.promoting-${run}`,
      `/quarantine/acme/u1.promoting-${run}`,
      `quarantine/acme/u1.promoting-${run}\n`,
      `quarantine/${"t".repeat(65)}/u1.promoting-${run}`, // a tenant longer than any
    ]) {
      expect([key, parseStagingKey(key)]).toEqual([key, null]);
    }
  });
});

describe("stagingCopyFate", () => {
  const copy = (ageSeconds: number) => ({ tenantId: "acme", lastModified: ago(ageSeconds) });

  it("leaves a copy younger than the safe age alone, whatever its upload, and one with no date", () => {
    for (const status of UPLOAD_STATUSES) expect(stagingCopyFate(copy(3599), row(status), true, now, settings)).toEqual({ sweep: false, why: "young" });
    expect(stagingCopyFate(copy(3599), null, undefined, now, settings)).toEqual({ sweep: false, why: "young" });
    expect(stagingCopyFate({ tenantId: "acme", lastModified: null }, null, undefined, now, settings)).toEqual({ sweep: false, why: "young" });
    // A clock ahead of storage's: a date in the future is young.
    expect(stagingCopyFate(copy(-60), null, undefined, now, settings)).toEqual({ sweep: false, why: "young" });
  });

  it("keeps every copy of an upload that is not final, until the backstop", () => {
    const open = UPLOAD_STATUSES.filter((s) => !TERMINAL_STATUSES.includes(s));
    expect(open).toEqual(expect.arrayContaining(["deciding", "scanning", "rechecking", "held", "quarantining"]));
    for (const status of open) {
      expect([status, stagingCopyFate(copy(3600), row(status), undefined, now, settings)]).toEqual([status, { sweep: false, why: "in_progress" }]);
      expect([status, stagingCopyFate(copy(7 * 86_400 - 1), row(status), undefined, now, settings)]).toEqual([status, { sweep: false, why: "in_progress" }]);
      expect([status, stagingCopyFate(copy(7 * 86_400), row(status), undefined, now, settings)]).toEqual([status, { sweep: true, why: "backstop" }]);
    }
  });

  it("sweeps a final upload's copy only when its final object is in place", () => {
    for (const status of TERMINAL_STATUSES) {
      expect([status, stagingCopyFate(copy(3600), row(status), true, now, settings)]).toEqual([status, { sweep: true, why: "final" }]);
      expect([status, stagingCopyFate(copy(3600), row(status), false, now, settings)]).toEqual([status, { sweep: false, why: "final_missing" }]);
      expect([status, stagingCopyFate(copy(3600), row(status, { finalKey: null }), undefined, now, settings)]).toEqual([status, { sweep: false, why: "final_missing" }]);
    }
  });

  it("sweeps a copy whose upload has no row, or whose row is another tenant's", () => {
    expect(stagingCopyFate(copy(3600), null, undefined, now, settings)).toEqual({ sweep: true, why: "no_upload" });
    expect(stagingCopyFate(copy(3600), row("deciding", { tenantId: "other" }), undefined, now, settings)).toEqual({ sweep: true, why: "no_upload" });
  });
});
