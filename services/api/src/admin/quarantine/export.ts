import { PassThrough, Readable, pipeline } from "node:stream";
import type { QuarantineFilter, QuarantineQueries } from "@intake/db";
import { InvalidRequestError } from "@intake/domain";
import type { Logger } from "@intake/runtime";
import { csvWriter } from "./csv.ts";
import { encodeCursor, type ReviewQuery } from "./filters.ts";
import { describeAction, exportRecord, humanEntries, type ExportRecord } from "./records.ts";

/**
 * The list's exports. JSON pages like the list (cursor, limit) and carries each upload's
 * whole audit trail. CSV holds every matching row in one file, read from the database in
 * keyset pages while it streams (memory stays flat), up to EXPORT_MAX_ROWS: past that the
 * request is refused before anything is written, because a file cut short in the middle of a
 * stream looks complete to whoever opens it.
 */
export const EXPORT_MAX_ROWS = 100_000;
const CSV_PAGE = 500;

export const LIST_COLUMNS = [
  { key: "id", header: "upload_id" },
  { key: "tenantId", header: "tenant_id" },
  { key: "tenantName", header: "tenant_name" },
  { key: "filename", header: "filename" },
  { key: "state", header: "state" },
  { key: "status", header: "status" },
  { key: "reason", header: "reason" },
  { key: "reasonDetail", header: "reason_detail" },
  { key: "signature", header: "signature" },
  { key: "scannerVersion", header: "scanner_version" },
  { key: "declaredType", header: "declared_type" },
  { key: "detectedType", header: "detected_type" },
  { key: "declaredSize", header: "declared_size" },
  { key: "storedSize", header: "stored_size" },
  { key: "sha256", header: "sha256" },
  { key: "finalKey", header: "quarantine_key" },
  { key: "createdAt", header: "created_at" },
  { key: "finishedAt", header: "quarantined_at" },
  { key: "retentionUntil", header: "retained_until" },
  { key: "purgedAt", header: "purged_at" },
  { key: "lastEvent", header: "last_event" },
  { key: "actions", header: "actions" },
] as const;

export async function exportPage(queries: QuarantineQueries, q: ReviewQuery, limit: number, retentionDays: number): Promise<{ items: ExportRecord[]; nextCursor: string | null }> {
  const page = await queries.list(q.filter, limit, q.cursor);
  const timelines = await queries.timelines(page.items.map((r) => r.id));
  return {
    items: page.items.map((r) => exportRecord(r, timelines.get(r.id) ?? [], retentionDays)),
    nextCursor: page.next ? encodeCursor(page.next) : null,
  };
}

/** Checks the size first (a clear error, not a truncated file), then streams. */
export async function exportCsv(queries: QuarantineQueries, filter: QuarantineFilter, retentionDays: number, logger: Pick<Logger, "error">, maxRows = EXPORT_MAX_ROWS): Promise<Readable> {
  const matching = await queries.count(filter);
  if (matching > maxRows) {
    throw new InvalidRequestError("export_too_large", `${matching} quarantined uploads match; a CSV export holds at most ${maxRows}: narrow the date range or the filters`, { matching, max: maxRows });
  }
  const rows = Readable.from(csvRows(queries, filter, retentionDays, maxRows));
  const out = new PassThrough();
  // pipeline, not pipe: a failed page read must end the response (the client sees a broken
  // download) rather than leave it hanging, and is logged since no status can carry it now.
  pipeline(rows, csvWriter(LIST_COLUMNS), out, (err) => {
    if (err) logger.error({ err }, "quarantine CSV export failed mid-stream");
  });
  return out;
}

async function* csvRows(queries: QuarantineQueries, filter: QuarantineFilter, retentionDays: number, maxRows: number): AsyncGenerator<Record<string, unknown>> {
  let after: { finishedAt: number; id: string } | undefined;
  let written = 0;
  do {
    const page = await queries.list(filter, CSV_PAGE, after);
    const timelines = await queries.timelines(page.items.map((r) => r.id));
    for (const r of page.items) {
      // A row quarantined between the count and the first page may slip in; the bound holds anyway.
      if (written++ >= maxRows) return;
      const timeline = timelines.get(r.id) ?? [];
      const record = exportRecord(r, timeline, retentionDays);
      const last = timeline.at(-1);
      yield {
        ...record,
        lastEvent: last ? describeAction(last) : null,
        actions: humanEntries(timeline).map(describeAction).join(" | ") || null,
      };
    }
    after = page.next ?? undefined;
  } while (after);
}
