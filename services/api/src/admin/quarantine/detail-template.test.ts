import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Eta } from "eta";
import { afterAll, describe, expect, it } from "vitest";

const VIEWS = fileURLToPath(new URL("../views", import.meta.url));

/** The detail page without the actions' partial: a views directory holding only the layout and the detail. */
describe("quarantine-detail.eta", () => {
  const dir = mkdtempSync(join(tmpdir(), "views-"));
  for (const f of ["layout.eta", "quarantine-detail.eta"]) copyFileSync(join(VIEWS, f), join(dir, f));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("renders whole when the actions partial is missing", () => {
    const eta = new Eta({ views: dir, autoEscape: true, cache: false, autoTrim: false });
    const at = new Date("2026-11-02T10:00:00.000Z");
    const html = eta.render("quarantine-detail", {
      admin: null,
      csrfToken: "",
      retentionDays: 90,
      record: { id: "up_1", tenantId: "t", tenantName: "T", status: "quarantined", state: "held", filename: "<b>x</b>", declaredType: "a/b", sniffedType: null, declaredSize: 1, storedSize: 1, sha256: null, reason: "malware", reasonDetail: null, signature: null, scannerVersion: null, objectKey: "k", finalKey: null, createdAt: at, uploadedAt: null, decidedAt: null, finishedAt: at, retentionUntil: null, retentionEndsAt: at, purgedAt: null, releaseDetail: null },
      timeline: [],
      overrides: [],
      iso: (d: Date | null) => (d ? d.toISOString() : "—"),
      bytes: (n: number | null) => `${n} B`,
      json: (v: unknown) => JSON.stringify(v),
    });
    expect(html).toContain('<table id="timeline">');
    expect(html).toContain("&lt;b&gt;x&lt;/b&gt;");
    expect(html).not.toContain('id="actions"');
    expect(html).not.toContain('id="verdict-from-cache"');
  });

  it("names the upload whose verdict a cache hit reused", () => {
    const eta = new Eta({ views: dir, autoEscape: true, cache: false, autoTrim: false });
    const at = new Date("2026-11-02T10:00:00.000Z");
    const html = eta.render("quarantine-detail", {
      admin: null,
      csrfToken: "",
      retentionDays: 90,
      record: { id: "up_2", tenantId: "t", tenantName: "T", status: "quarantined", state: "held", filename: "x", declaredType: "a/b", sniffedType: null, declaredSize: 1, storedSize: 1, sha256: null, reason: "malware", reasonDetail: null, signature: "Eicar", scannerVersion: null, verdictFromCache: "up_1", objectKey: "k", finalKey: null, createdAt: at, uploadedAt: null, decidedAt: null, finishedAt: at, retentionUntil: null, retentionEndsAt: at, purgedAt: null, releaseDetail: null },
      timeline: [],
      overrides: [],
      iso: (d: Date | null) => (d ? d.toISOString() : "—"),
      bytes: (n: number | null) => `${n} B`,
      json: (v: unknown) => JSON.stringify(v),
    });
    expect(html).toMatch(/id="verdict-from-cache">verdict reused from <span class="mono">up_1<\/span>/);
  });
});
