import { InvalidRequestError } from "./errors.ts";

/**
 * An operator's request for a rescan (the admin API and page): which verified uploads it
 * covers, by tenant and by the date their verdict was made. Dates are ISO-8601 (a day,
 * 2026-11-30, means its start in UTC); `to` is exclusive. Without `from`, the deployment's
 * RESCAN_WINDOW_DAYS back from now.
 */
export interface RescanRequest {
  tenantId: string | null;
  verifiedFrom: Date;
  verifiedTo: Date | null;
}

const DAY_MS = 86_400_000;
const ISO = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;
const TENANT = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function parseRescanRequest(input: Record<string, unknown>, o: { now: Date; windowDays: number }): RescanRequest {
  for (const key of Object.keys(input)) if (!["tenantId", "from", "to"].includes(key)) throw invalid(key, `unknown field ${JSON.stringify(key.slice(0, 40))}: a rescan takes tenantId, from and to`);
  const tenantId = input.tenantId === undefined || input.tenantId === null || input.tenantId === "" ? null : input.tenantId;
  if (tenantId !== null && (typeof tenantId !== "string" || !TENANT.test(tenantId))) throw invalid("tenantId", "tenantId must be a tenant id (1-63 lower-case letters, digits, '_' or '-')");
  const from = dateOf(input.from, "from") ?? new Date(o.now.getTime() - o.windowDays * DAY_MS);
  const to = dateOf(input.to, "to");
  if (from.getTime() > o.now.getTime()) throw invalid("from", "from is in the future: no upload was verified then");
  if (to && to.getTime() <= from.getTime()) throw invalid("to", "to must be after from");
  return { tenantId: tenantId as string | null, verifiedFrom: from, verifiedTo: to };
}

function dateOf(v: unknown, field: string): Date | null {
  if (v === undefined || v === null || v === "") return null;
  if (typeof v !== "string" || !ISO.test(v)) throw invalid(field, `${field} must be an ISO-8601 date (2026-11-30) or time (2026-11-30T12:00:00Z)`);
  const d = new Date(v.length === 10 ? `${v}T00:00:00Z` : v);
  // Date accepts 2026-02-31 as March 3rd: the day must read back as written.
  if (Number.isNaN(d.getTime()) || (v.length === 10 && d.toISOString().slice(0, 10) !== v)) throw invalid(field, `${field} is not a real date: ${v}`);
  return d;
}

function invalid(field: string, message: string): InvalidRequestError {
  return new InvalidRequestError("invalid_rescan", message, { field });
}
