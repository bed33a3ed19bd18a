import type { Context } from "koa";
import { QuarantineQueries, type AuditRecord, type TimelineEntry } from "@intake/db";
import { can, IntakeError, InvalidRequestError, QUARANTINE_REASONS, type AdminPrincipal } from "@intake/domain";
import type { AdminState } from "../guard.ts";
import type { AdminModule } from "../module.ts";
import { columnChart, horizontalBarChart } from "./charts.ts";
import { attachment, csvWriter, fileStamp } from "./csv.ts";
import { exportCsv, exportPage } from "./export.ts";
import { encodeCursor, isUploadId, parseLimit, parseReviewQuery, queryString, type ReviewQuery } from "./filters.ts";
import { retentionEndsAt, stateOf } from "./records.ts";
import { buildSummary, summaryRows, SUMMARY_COLUMNS, type SummaryReport } from "./summary.ts";

/**
 * The compliance review's read side: the quarantine list, one upload in detail, the summary
 * with its charts (pages, /admin/quarantine...), and the exports of the same data
 * (/v1/admin/quarantine...: the session's cookie like the pages, so a reviewer downloads
 * from a link; JSON errors). A reviewer limited to some tenants sees nothing of the others
 * anywhere here: the scope is part of every query, and an upload outside it is "not found".
 */
const PAGE_SIZE = 50;
const JSON_PAGE_DEFAULT = 100;
const JSON_PAGE_MAX = 500;
const PAGE_ACTIONS = 500;
const EXPORT_ACTIONS = 10_000;

export const mountQuarantine: AdminModule = (router, m) => {
  const queries = new QuarantineQueries(m.db);
  const retentionDays = m.config.reaper.quarantineRetentionDays;
  const page = m.guard.require("quarantine.review", { page: true });
  const api = m.guard.require("quarantine.review");

  router.get("/admin/quarantine", page, async (ctx) => {
    const admin = principal(ctx);
    const params = new URLSearchParams(ctx.querystring);
    const tenants = await queries.tenants(admin.tenantIds);
    const base = { title: "Quarantine", tenants, reasons: QUARANTINE_REASONS, ...formatters };
    let q: ReviewQuery;
    try {
      q = parseReviewQuery(params, admin);
    } catch (err) {
      if (!(err instanceof IntakeError)) throw err;
      const values = { tenant: "", reason: "", signature: "", from: "", to: "", ...Object.fromEntries(params) };
      return m.views.render(ctx, "quarantine-list", { ...base, values, error: err.message, records: [], total: 0, links: {} }, 400);
    }
    const [result, total] = await Promise.all([queries.list(q.filter, PAGE_SIZE, q.cursor), queries.count(q.filter)]);
    const records = result.items.map((r) => ({ ...r, state: stateOf(r), retentionEndsAt: retentionEndsAt(r, retentionDays) }));
    const links = {
      next: result.next ? `/admin/quarantine${queryString(q.values, { cursor: encodeCursor(result.next) })}` : null,
      first: q.cursor ? `/admin/quarantine${queryString(q.values)}` : null,
      csv: `/v1/admin/quarantine${queryString(q.values, { format: "csv" })}`,
      json: `/v1/admin/quarantine${queryString(q.values, { format: "json" })}`,
      summary: `/admin/quarantine/summary${queryString(q.values)}`,
    };
    m.views.render(ctx, "quarantine-list", { ...base, values: q.values, records, total, links, error: null });
  });

  // Before /:id, which would otherwise take "summary" for an id.
  router.get("/admin/quarantine/summary", page, async (ctx) => {
    const admin = principal(ctx);
    const tenants = await queries.tenants(admin.tenantIds);
    const base = { title: "Quarantine summary", tenants, reasons: QUARANTINE_REASONS, ...formatters };
    let report: SummaryReport;
    try {
      report = await buildSummary(queries, new URLSearchParams(ctx.querystring), admin, m.now(), PAGE_ACTIONS);
    } catch (err) {
      if (!(err instanceof IntakeError)) throw err;
      const values = { tenant: "", reason: "", signature: "", from: "", to: "", ...Object.fromEntries(new URLSearchParams(ctx.querystring)) };
      return m.views.render(ctx, "quarantine-summary", { ...base, values, error: err.message, report: null, charts: null, links: {} }, 400);
    }
    const charts = {
      byReason: horizontalBarChart("Quarantined uploads by reason", report.byReason.map((c) => ({ label: c.key, value: c.count }))),
      byTenant: horizontalBarChart("Quarantined uploads by tenant", report.byTenant.map((c) => ({ label: c.name ? `${c.name} (${c.key})` : c.key, value: c.count }))),
      byDay: columnChart("Quarantined uploads by day (UTC)", report.byDay.map((c) => ({ label: c.key.slice(5), value: c.count, title: `${c.key}: ${c.count}` }))),
    };
    const links = {
      csv: `/v1/admin/quarantine/summary${queryString(report.values, { format: "csv" })}`,
      list: `/admin/quarantine${queryString(report.values)}`,
    };
    m.views.render(ctx, "quarantine-summary", { ...base, values: report.values, report, charts, links, error: null });
  });

  router.get("/admin/quarantine/:id", page, async (ctx) => {
    const admin = principal(ctx);
    const id = ctx.params.id!;
    // Absent, not quarantined and another tenant's all answer the same 404: a limited
    // reviewer cannot learn that an id exists by probing.
    const record = isUploadId(id) ? await queries.get(id, admin.tenantIds) : null;
    if (!record) return m.views.render(ctx, "quarantine-detail", { title: "Not found", record: null, ...formatters }, 404);
    const [trail, overrides] = await Promise.all([m.audit.forUpload(id), queries.overrides(id)]);
    const names = await queries.adminNames(trail.map((e) => e.actorId ?? ""));
    m.views.render(ctx, "quarantine-detail", {
      title: `Quarantined upload ${record.id}`,
      record: { ...record, state: stateOf(record), retentionEndsAt: retentionEndsAt(record, retentionDays) },
      retentionDays,
      timeline: trail.map((e) => timelineEntry(e, names)),
      overrides,
      canAct: can(admin, "quarantine.act"),
      canOverride: can(admin, "quarantine.override"),
      // The outcome of an action the actions' partial reports after its redirect (it shows
      // only the notices it knows; never this text itself).
      done: new URLSearchParams(ctx.querystring).get("done"),
      ...formatters,
    });
  });

  router.get("/v1/admin/quarantine", api, async (ctx) => {
    const admin = principal(ctx);
    const params = new URLSearchParams(ctx.querystring);
    const format = exportFormat(params);
    const q = parseReviewQuery(params, admin);
    const stamp = fileStamp(m.now());
    if (format === "csv") {
      const body = await exportCsv(queries, q.filter, retentionDays, m.logger);
      ctx.type = "text/csv; charset=utf-8";
      ctx.set("Content-Disposition", attachment(`quarantine-${stamp}.csv`));
      ctx.body = body;
      return;
    }
    const limit = parseLimit(params.get("limit"), JSON_PAGE_DEFAULT, JSON_PAGE_MAX);
    const result = await exportPage(queries, q, limit, retentionDays);
    ctx.type = "application/json; charset=utf-8";
    ctx.set("Content-Disposition", attachment(`quarantine-${stamp}.json`));
    ctx.body = { generatedAt: m.now().toISOString(), filter: q.values, ...result };
  });

  router.get("/v1/admin/quarantine/summary", api, async (ctx) => {
    const admin = principal(ctx);
    const params = new URLSearchParams(ctx.querystring);
    const format = exportFormat(params);
    const report = await buildSummary(queries, params, admin, m.now(), EXPORT_ACTIONS);
    const name = `quarantine-summary-${report.from}_${report.to}`;
    if (format === "csv") {
      const writer = csvWriter(SUMMARY_COLUMNS);
      ctx.type = "text/csv; charset=utf-8";
      ctx.set("Content-Disposition", attachment(`${name}.csv`));
      ctx.body = writer;
      for (const row of summaryRows(report)) writer.write(row);
      writer.end();
      return;
    }
    ctx.type = "application/json; charset=utf-8";
    ctx.set("Content-Disposition", attachment(`${name}.json`));
    ctx.body = {
      generatedAt: m.now().toISOString(),
      ...report,
      actions: report.actions.map((a) => ({ ...a, at: a.at.toISOString() })),
    };
  });
};

function principal(ctx: Context): AdminPrincipal {
  return (ctx.state as AdminState).admin;
}

function exportFormat(params: URLSearchParams): "csv" | "json" {
  const format = params.get("format") ?? "json";
  if (format === "csv" || format === "json") return format;
  throw new InvalidRequestError("invalid_format", "format must be csv or json");
}

/** An audit row as the detail shows it: the person behind a human action named. */
function timelineEntry(e: AuditRecord, names: Map<string, string>): TimelineEntry {
  const seq = (e as { seq?: unknown }).seq;
  return {
    id: e.id,
    seq: typeof seq === "number" ? seq : null,
    at: e.at,
    actor: e.actor,
    actorId: e.actorId ?? null,
    actorName: e.actorId ? (names.get(e.actorId) ?? null) : null,
    action: e.action,
    stateBefore: e.stateBefore ?? null,
    stateAfter: e.stateAfter ?? null,
    justification: e.justification ?? null,
    detail: e.detail,
  };
}

/** For the templates: times as ISO-8601 UTC, sizes in bytes with a readable unit. */
const formatters = {
  iso: (d: Date | null | undefined) => (d ? d.toISOString() : "—"),
  bytes: (n: number | null | undefined) => {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]} (${n} B)`;
  },
  json: (v: unknown) => JSON.stringify(v),
};

