import type { QuarantineRecord, TimelineEntry } from "@intake/db";
import { DAY_MS } from "./filters.ts";

/**
 * What the review shows of a quarantined upload beyond its columns: where it stands now and
 * until when it is kept. One place, so the page, the detail and both exports agree.
 */
export type QuarantineState = "held" | "purged" | "released" | string;

export function stateOf(r: Pick<QuarantineRecord, "status" | "purgedAt">): QuarantineState {
  if (r.purgedAt) return "purged"; // the bytes are gone (retention, or a reviewer's delete); the record stays
  if (r.status === "quarantined") return "held";
  if (r.status === "verified") return "released"; // a recheck passed and the object was promoted
  return r.status;
}

/**
 * The quarantined object is kept for the configured period after its verdict, or until a
 * reviewer's extension if that is later: an extension never shortens the default.
 */
export function retentionEndsAt(r: Pick<QuarantineRecord, "finishedAt" | "retentionUntil">, retentionDays: number): Date {
  const byDefault = r.finishedAt.getTime() + retentionDays * DAY_MS;
  return new Date(Math.max(byDefault, r.retentionUntil?.getTime() ?? 0));
}

/** Timeline rows a person wrote (releases, deletes, extensions, overrides). */
export function humanEntries(timeline: readonly TimelineEntry[]): TimelineEntry[] {
  return timeline.filter((e) => e.actor === "admin");
}

/** "2026-12-01T14:00:00.000Z release by Ana Reviewer (usr_1): why" — one action on one line of a cell. */
export function describeAction(e: TimelineEntry): string {
  const who = e.actorName ? `${e.actorName} (${e.actorId ?? "?"})` : (e.actorId ?? e.actor);
  const why = e.justification ? `: ${e.justification.replace(/\s+/g, " ")}` : "";
  return `${e.at.toISOString()} ${e.action} by ${who}${why}`;
}

/** The exports' view of one upload: plain values, ISO-8601 UTC times, names next to ids. */
export function exportRecord(r: QuarantineRecord, timeline: readonly TimelineEntry[], retentionDays: number) {
  return {
    id: r.id,
    tenantId: r.tenantId,
    tenantName: r.tenantName,
    filename: r.filename,
    state: stateOf(r),
    status: r.status,
    reason: r.reason,
    reasonDetail: r.reasonDetail,
    signature: r.signature,
    scannerVersion: r.scannerVersion,
    declaredType: r.declaredType,
    detectedType: r.sniffedType,
    declaredSize: r.declaredSize,
    storedSize: r.storedSize,
    sha256: r.sha256,
    objectKey: r.objectKey,
    finalKey: r.finalKey,
    createdAt: r.createdAt.toISOString(),
    finishedAt: r.finishedAt.toISOString(),
    retentionUntil: retentionEndsAt(r, retentionDays).toISOString(),
    purgedAt: r.purgedAt?.toISOString() ?? null,
    timeline: timeline.map((e) => ({
      id: e.id,
      seq: e.seq,
      at: e.at.toISOString(),
      actor: e.actor,
      actorId: e.actorId,
      actorName: e.actorName,
      action: e.action,
      stateBefore: e.stateBefore,
      stateAfter: e.stateAfter,
      justification: e.justification,
      detail: e.detail,
    })),
  };
}
export type ExportRecord = ReturnType<typeof exportRecord>;
