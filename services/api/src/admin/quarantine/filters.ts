import type { QuarantineCursor, QuarantineFilter } from "@intake/db";
import { InvalidRequestError, QUARANTINE_REASONS, type AdminPrincipal } from "@intake/domain";

/**
 * The review's query string, read once for the page, the detail links and the exports, so
 * that "the same filters" means the same code. Empty fields are absent (a GET form sends
 * every field). Dates are UTC calendar days: `from` is inclusive from 00:00:00.000Z, `to` is
 * inclusive up to the end of that day.
 */
export interface ReviewQuery {
  filter: QuarantineFilter;
  cursor?: QuarantineCursor;
  /** The filter's fields as given, for the form and for links (cursor excluded). */
  values: { tenant: string; reason: string; signature: string; from: string; to: string };
}

export const DAY_MS = 86_400_000;
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const MAX_SIGNATURE = 200;

export function parseReviewQuery(params: URLSearchParams, principal: AdminPrincipal): ReviewQuery {
  const field = (name: string) => (params.get(name) ?? "").trim();
  const values = { tenant: field("tenant"), reason: field("reason"), signature: field("signature"), from: field("from"), to: field("to") };
  // The reader's scope is part of every filter: a tenant named here but outside it matches
  // nothing (the query ANDs both), rather than an error that would confirm the tenant exists.
  const filter: QuarantineFilter = { scope: principal.tenantIds };
  if (values.tenant) {
    if (!ID.test(values.tenant)) throw invalid("tenant", "tenant is not a tenant id");
    filter.tenantId = values.tenant;
  }
  if (values.reason) {
    if (!(QUARANTINE_REASONS as readonly string[]).includes(values.reason)) throw invalid("reason", `reason must be one of ${QUARANTINE_REASONS.join(", ")}`);
    filter.reason = values.reason;
  }
  if (values.signature) {
    if (values.signature.length > MAX_SIGNATURE) throw invalid("signature", `signature is at most ${MAX_SIGNATURE} characters`);
    filter.signature = values.signature;
  }
  if (values.from) filter.finishedFrom = utcDay(values.from, "from");
  if (values.to) filter.finishedBefore = new Date(utcDay(values.to, "to").getTime() + DAY_MS);
  if (filter.finishedFrom && filter.finishedBefore && filter.finishedFrom >= filter.finishedBefore) throw invalid("to", "to is before from");
  const rawCursor = field("cursor");
  return rawCursor ? { filter, values, cursor: decodeCursor(rawCursor) } : { filter, values };
}

/** A UTC calendar day, YYYY-MM-DD, that exists (no 2026-02-30). */
export function utcDay(text: string, name: string): Date {
  const m = DATE.exec(text);
  if (m) {
    const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
    if (d.toISOString().slice(0, 10) === text) return d;
  }
  throw invalid(name, `${name} must be a date as YYYY-MM-DD (UTC)`);
}

export function dayOf(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** Opaque to clients: where the previous page ended. */
export function encodeCursor(c: QuarantineCursor): string {
  return Buffer.from(JSON.stringify([c.finishedAt, c.id])).toString("base64url");
}

export function decodeCursor(raw: string): QuarantineCursor {
  try {
    const [finishedAt, id] = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as [unknown, unknown];
    if (Number.isSafeInteger(finishedAt) && typeof id === "string" && ID.test(id)) return { finishedAt: finishedAt as number, id };
  } catch {
    // fall through: any malformed cursor gets the same answer
  }
  throw new InvalidRequestError("invalid_cursor", "cursor is not one this API returned");
}

/** A page size from the query (exports); the pages use a fixed one. */
export function parseLimit(raw: string | null, fallback: number, max: number): number {
  if (raw === null || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw invalid("limit", `limit must be an integer from 1 to ${max}`);
  return n;
}

/** The query string of a filter (and optionally a cursor), for links. */
export function queryString(values: ReviewQuery["values"], extra: Record<string, string> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...values, ...extra })) if (v) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

export function isUploadId(id: string): boolean {
  return ID.test(id);
}

function invalid(field: string, message: string): InvalidRequestError {
  return new InvalidRequestError("invalid_filter", message, { field });
}
