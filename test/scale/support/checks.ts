import type { Knex } from "knex";
import { objectKey, PREFIX } from "@intake/domain";
import type { PlannedUpload } from "./workload.ts";

/**
 * What a scale-out run must show, read back from the database and the bucket after the
 * run (never from what the processes said about themselves):
 * - every upload sent has a row in a final status, and the verdict the content calls for
 *   (EICAR: quarantined for malware; everything else: verified);
 * - exactly one verdict each by three independent counts: the audit trail's
 *   upload.verified/upload.quarantined rows, the webhook outbox's events (written in the
 *   verdict's own transaction) and the status itself;
 * - the bucket: nothing under pending/, each upload's object under exactly the prefix its
 *   verdict names, none under both, nothing in verified/ or quarantine/ that is no upload's.
 */
export interface RunFindings {
  sent: number;
  verified: number;
  quarantined: number;
  /** Sent uploads with no row, or a row not in a final status: id -> status. */
  notFinal: Record<string, string>;
  /** A verdict other than the content calls for: id -> what happened. */
  wrongVerdicts: Record<string, string>;
  /** Uploads with other than one verdict in the audit trail or the outbox: id -> counts. */
  doubleVerdicts: Record<string, string>;
  pendingObjects: string[];
  /** Uploads whose object is missing from its verdict's prefix, or present under both. */
  misplacedObjects: Record<string, string>;
  strayObjects: string[];
  /**
   * Staging copies (finalize-decision.ts stagingKey: quarantine/<tenant>/<id>.promoting-<run>)
   * of an upload of the run that reached its verdict, left by a finalize or scan process
   * killed between its staging copy and that copy's removal. Never served, by design, and
   * swept by the reaper once STAGING_SWEEP_AFTER_SECONDS old (staging-sweep.ts): the run
   * waits for that before these checks, so none may be left.
   */
  orphanStagingCopies: string[];
  multipart: number;
  staged: number;
  putOnly: number;
  /** First create to last verdict, from the rows' own timestamps. */
  wallSeconds: number;
  uploadsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const ONE_PASS_MAX_BYTES = 8 * 1024 * 1024;
const FINAL = ["verified", "quarantined"];

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function checkRun(db: Knex, plan: PlannedUpload[], ids: Map<number, string>, keys: string[]): Promise<RunFindings> {
  const wanted = [...ids.values()];
  const rows = new Map<string, { id: string; tenant_id: string; status: string; reason: string | null; part_count: number | null; stored_size: number | null; created_at: number; finished_at: number | null }>();
  const audits = new Map<string, string[]>();
  const outbox = new Map<string, string[]>();
  // In chunks: PostgreSQL takes at most 65,535 bind parameters a statement.
  for (let i = 0; i < wanted.length; i += 1000) {
    const chunk = wanted.slice(i, i + 1000);
    for (const r of await db("uploads").whereIn("id", chunk).select("id", "tenant_id", "status", "reason", "part_count", "stored_size", "created_at", "finished_at")) {
      rows.set(r.id, { ...r, created_at: Number(r.created_at), finished_at: r.finished_at === null ? null : Number(r.finished_at), stored_size: r.stored_size === null ? null : Number(r.stored_size) });
    }
    for (const a of await db("audit_events").whereIn("upload_id", chunk).whereIn("action", ["upload.verified", "upload.quarantined"]).select("upload_id", "action")) {
      audits.set(a.upload_id, [...(audits.get(a.upload_id) ?? []), a.action]);
    }
    for (const e of await db("webhook_events").whereIn("upload_id", chunk).select("upload_id", "type")) {
      outbox.set(e.upload_id, [...(outbox.get(e.upload_id) ?? []), e.type]);
    }
  }
  const present = new Set(keys);
  const f: RunFindings = {
    sent: wanted.length,
    verified: 0,
    quarantined: 0,
    notFinal: {},
    wrongVerdicts: {},
    doubleVerdicts: {},
    pendingObjects: keys.filter((k) => k.startsWith(`${PREFIX.pending}/`)),
    misplacedObjects: {},
    strayObjects: [],
    orphanStagingCopies: [],
    multipart: 0,
    staged: 0,
    putOnly: 0,
    wallSeconds: NaN,
    uploadsPerSecond: NaN,
    p50Ms: NaN,
    p99Ms: NaN,
  };
  const owned = new Set<string>();
  const latencies: number[] = [];
  let first = Infinity;
  let lastVerdict = 0;
  for (const p of plan) {
    const id = ids.get(p.index);
    if (!id) continue; // a client error, reported as such
    if (p.via === "put-only") f.putOnly++;
    const row = rows.get(id);
    if (!row || !FINAL.includes(row.status)) {
      f.notFinal[id] = row?.status ?? "no row";
      continue;
    }
    if (row.status === "verified") f.verified++;
    else f.quarantined++;
    if (row.part_count !== null) f.multipart++;
    if ((row.stored_size ?? 0) > ONE_PASS_MAX_BYTES) f.staged++;
    const expected = p.kind === "eicar" ? "quarantined/malware" : "verified";
    const got = row.status === "verified" ? "verified" : `quarantined/${row.reason}`;
    if (got !== expected) f.wrongVerdicts[id] = `${p.kind} ${p.size} B: ${got}`;

    const verdictAction = row.status === "verified" ? "upload.verified" : "upload.quarantined";
    const a = audits.get(id) ?? [];
    const w = outbox.get(id) ?? [];
    if (a.length !== 1 || a[0] !== verdictAction || w.length !== 1 || w[0] !== verdictAction) f.doubleVerdicts[id] = `status ${row.status}; audit [${a.join(",")}]; outbox [${w.join(",")}]`;

    const verifiedKey = objectKey("verified", row.tenant_id, id);
    const quarantineKey = objectKey("quarantine", row.tenant_id, id);
    owned.add(verifiedKey).add(quarantineKey);
    const want = row.status === "verified" ? verifiedKey : quarantineKey;
    const other = row.status === "verified" ? quarantineKey : verifiedKey;
    if (!present.has(want) || present.has(other)) f.misplacedObjects[id] = `${row.status}: ${present.has(verifiedKey) ? "in" : "not in"} verified/, ${present.has(quarantineKey) ? "in" : "not in"} quarantine/`;

    first = Math.min(first, row.created_at);
    lastVerdict = Math.max(lastVerdict, row.finished_at ?? 0);
    if (row.finished_at !== null) latencies.push(row.finished_at - row.created_at);
  }
  const unowned = keys.filter((k) => !k.startsWith(`${PREFIX.pending}/`) && !owned.has(k));
  const staging = /^(quarantine\/[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+)\.promoting-[0-9a-f-]{36}$/;
  f.orphanStagingCopies = unowned.filter((k) => owned.has(staging.exec(k)?.[1] ?? ""));
  f.strayObjects = unowned.filter((k) => !f.orphanStagingCopies.includes(k));
  latencies.sort((x, y) => x - y);
  f.wallSeconds = (lastVerdict - first) / 1000;
  f.uploadsPerSecond = (f.verified + f.quarantined) / f.wallSeconds;
  f.p50Ms = percentile(latencies, 50);
  f.p99Ms = percentile(latencies, 99);
  return f;
}
