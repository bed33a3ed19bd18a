import type { Count, HumanAction, QuarantineQueries, QuarantineSummary } from "@intake/db";
import { InvalidRequestError, type AdminPrincipal } from "@intake/domain";
import { DAY_MS, dayOf, parseReviewQuery, type ReviewQuery } from "./filters.ts";

/**
 * The summary of a date range: counts by reason, tenant and day (every day of the range,
 * zeros included, so the chart's gaps are real), and what people did to uploads in it.
 * Without dates it covers the last 30 days up to today (UTC).
 */
export interface SummaryReport extends QuarantineSummary {
  from: string;
  to: string;
  values: ReviewQuery["values"];
  actions: HumanAction[];
  /** More actions happened than the report holds (see the limit). */
  actionsTruncated: boolean;
}

export const DEFAULT_DAYS = 30;
export const MAX_DAYS = 366;

export async function buildSummary(queries: QuarantineQueries, params: URLSearchParams, principal: AdminPrincipal, now: Date, actionLimit: number): Promise<SummaryReport> {
  const { filter, values } = parseReviewQuery(params, principal);
  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  const before = filter.finishedBefore ?? new Date(today.getTime() + DAY_MS);
  const from = filter.finishedFrom ?? new Date(before.getTime() - DEFAULT_DAYS * DAY_MS);
  if (from >= before) throw new InvalidRequestError("invalid_filter", "from is after to", { field: "from" });
  const days = Math.round((before.getTime() - from.getTime()) / DAY_MS);
  if (days > MAX_DAYS) throw new InvalidRequestError("invalid_filter", `a summary covers at most ${MAX_DAYS} days; this range has ${days}`, { field: "from" });
  const range = { ...filter, finishedFrom: from, finishedBefore: before };

  const counts = await queries.summary(range);
  const actions = await queries.humanActions({ scope: filter.scope, from, before, ...(filter.tenantId ? { tenantId: filter.tenantId } : {}) }, actionLimit + 1);
  const to = dayOf(new Date(before.getTime() - DAY_MS));
  return {
    ...counts,
    byDay: everyDay(from, days, counts.byDay),
    from: dayOf(from),
    to,
    values: { ...values, from: dayOf(from), to },
    actions: actions.slice(0, actionLimit),
    actionsTruncated: actions.length > actionLimit,
  };
}

function everyDay(from: Date, days: number, counted: readonly Count[]): Count[] {
  const byKey = new Map(counted.map((c) => [c.key, c.count]));
  return Array.from({ length: days }, (_, i) => {
    const key = dayOf(new Date(from.getTime() + i * DAY_MS));
    return { key, count: byKey.get(key) ?? 0 };
  });
}

/** The summary as one CSV table: one row per count or action, the section saying which. */
export const SUMMARY_COLUMNS = [
  { key: "section", header: "section" },
  { key: "day", header: "day" },
  { key: "reason", header: "reason" },
  { key: "tenantId", header: "tenant_id" },
  { key: "tenantName", header: "tenant_name" },
  { key: "count", header: "count" },
  { key: "at", header: "at" },
  { key: "action", header: "action" },
  { key: "uploadId", header: "upload_id" },
  { key: "filename", header: "filename" },
  { key: "actorId", header: "actor_id" },
  { key: "actorName", header: "actor_name" },
  { key: "stateBefore", header: "state_before" },
  { key: "stateAfter", header: "state_after" },
  { key: "justification", header: "justification" },
] as const;

export function* summaryRows(s: SummaryReport): Generator<Record<string, unknown>> {
  yield { section: "range", day: `${s.from}..${s.to}`, count: s.total };
  for (const c of s.byReason) yield { section: "by_reason", reason: c.key, count: c.count };
  for (const c of s.byTenant) yield { section: "by_tenant", tenantId: c.key, tenantName: c.name, count: c.count };
  for (const c of s.byDay) yield { section: "by_day", day: c.key, count: c.count };
  for (const a of s.actions) {
    yield {
      section: "action",
      at: a.at,
      action: a.action,
      uploadId: a.uploadId,
      filename: a.filename,
      tenantId: a.tenantId,
      tenantName: a.tenantName,
      actorId: a.actorId,
      actorName: a.actorName,
      stateBefore: a.stateBefore,
      stateAfter: a.stateAfter,
      justification: a.justification,
    };
  }
  if (s.actionsTruncated) yield { section: "actions_truncated", count: s.actions.length };
}
