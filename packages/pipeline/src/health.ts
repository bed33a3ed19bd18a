import type { Upload, UploadStatus } from "@intake/domain";
import type { QueueDepth } from "@intake/storage";
import type { ReceiveLagObservation } from "./receive-lag.ts";

/**
 * The pipeline's health as an operator reads it: one set of facts shared by /readyz, the
 * health page (/admin/health, /v1/admin/health) and the metrics. Each fact is gathered on
 * its own, under a deadline, so one dependency that is down or slow shows as that fact's
 * error and hides none of the others.
 */

/** clamd's VERSION, as @intake/scanner parses it ("ClamAV 1.0.7/27450/Tue Nov 30 09:12:00 2026"). */
export interface ClamdVersionInfo {
  engine: string;
  /** Daily database version, or "none" when clamd names none (a custom/test database only). */
  signatures: string;
  signaturesDate?: string;
  raw: string;
}

export interface HealthSources {
  clamdVersion(): Promise<ClamdVersionInfo>;
  /** The marker infra/clamd/up.sh leaves next to a generated test database (same host only). */
  testSignaturesMarker(): boolean;
  /** When that generated database was written, if it is here (@intake/scanner testDatabaseDate). */
  testDatabaseDate(): Date | null;
  receiveLag: { read(): Promise<ReceiveLagObservation | null> };
  /** The SQS dead-letter queue of the event queue; null where there is no SQS. */
  deadLetters: { label: string; depth(signal?: AbortSignal): Promise<QueueDepth> } | null;
  /** Oldest first (UploadRepository.findStuck). */
  uploads: { findStuck(before: Date, limit?: number): Promise<Upload[]>; heldSummary?(): Promise<{ count: number; oldestSince: Date | null }> };
  maxAgeHours: number;
  stuckAfterSeconds: number;
  now?: () => Date;
  /** Deadline of each fact (default 2000 ms). */
  timeoutMs?: number;
}

export interface SignatureFacts {
  /** Daily database version, null when clamd names none. */
  version: string | null;
  /** ISO-8601 UTC. */
  date: string | null;
  /** Where the date comes from: clamd's VERSION, or the generated test database's files. */
  dateSource: "clamd" | "test_database_files" | null;
  ageHours: number | null;
  maxAgeHours: number;
  /** Older than maxAgeHours, or of an age nobody can tell (an unknown age is not a young one). */
  stale: boolean;
  testSignaturesOnly: boolean;
}

export interface HealthFlag {
  code: "clamd_down" | "test_signatures_only" | "signatures_stale" | "verdicts_held" | "dead_letters" | "uploads_stuck" | "fact_unavailable";
  /** critical: scanning gives no real protection or does not run; warning: someone should look. */
  severity: "critical" | "warning";
  message: string;
}

export interface PipelineHealthReport {
  checkedAt: string;
  clamd: { reachable: boolean; engine: string | null; versionLine: string | null; error?: string };
  signatures: SignatureFacts;
  sqs: {
    receiveLag: { lagMs: number; observedAt: string; messages: number } | null;
    receiveLagError?: string;
    deadLetters: { queue: string; depth: number; inFlight: number } | null;
    deadLettersError?: string;
  };
  processing: {
    /** The upload in processing whose row moved least recently. */
    oldest: { id: string; tenantId: string; status: UploadStatus; since: string; ageSeconds: number; stuck: boolean } | null;
    stuckAfterSeconds: number;
    error?: string;
  };
  /** Uploads whose clean result waits for fresh signatures (status held); null when unknown. */
  held: { count: number; oldestSince: string | null; oldestSeconds: number } | null;
  heldError?: string;
  flags: HealthFlag[];
}

/** clamd prints the database's build time with ctime(3): "Tue Nov 30 09:12:00 2026". */
const CTIME = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * The date in clamd's VERSION answer. ctime(3) prints the clamd host's local time with no
 * zone; it is read as UTC (clamd hosts and containers run in UTC as a rule): elsewhere the
 * age is off by the host's offset, hours against a threshold of days. The weekday is not
 * checked against the date: clamd's is the C library's, ours would only add a way to fail.
 */
export function parseClamdDate(text: string): Date | null {
  const m = CTIME.exec(text.trim());
  if (!m) return null;
  const [, mon, day, hh, mm, ss, year] = m;
  const d = new Date(Date.UTC(Number(year), MONTHS.indexOf(mon!), Number(day), Number(hh), Number(mm), Number(ss)));
  return Number.isNaN(d.getTime()) || d.getUTCDate() !== Number(day) ? null : d;
}

/**
 * What the loaded signatures are and how old. Official databases name their version and
 * build date in VERSION; the generated test database names neither, so its date is its
 * files' (when they are on this host) and it is flagged as test signatures whatever its age.
 */
export function signatureFacts(version: ClamdVersionInfo | null, o: { now: Date; maxAgeHours: number; testSignaturesMarker: boolean; testDatabaseDate: Date | null }): SignatureFacts {
  const named = version && version.signatures !== "none" ? version.signatures : null;
  const testSignaturesOnly = o.testSignaturesMarker || (version !== null && named === null);
  const fromClamd = named && version?.signaturesDate ? parseClamdDate(version.signaturesDate) : null;
  const date = fromClamd ?? (testSignaturesOnly ? o.testDatabaseDate : null);
  const ageHours = date ? Math.max(0, (o.now.getTime() - date.getTime()) / 3_600_000) : null;
  return {
    version: named,
    date: date?.toISOString() ?? null,
    dateSource: fromClamd ? "clamd" : date ? "test_database_files" : null,
    ageHours: ageHours === null ? null : Math.round(ageHours * 100) / 100,
    maxAgeHours: o.maxAgeHours,
    stale: ageHours === null || ageHours > o.maxAgeHours,
    testSignaturesOnly,
  };
}

export interface PipelineHealth {
  report(): Promise<PipelineHealthReport>;
}

/** Reports are reused for this long: /readyz is unauthenticated, and each report costs a
 * clamd round trip, an SQS request and a database query. */
export const HEALTH_CACHE_MS = 2000;

export function createPipelineHealth(s: HealthSources, opts: { cacheMs?: number } = {}): PipelineHealth {
  const cacheMs = opts.cacheMs ?? HEALTH_CACHE_MS;
  let last: { at: number; report: Promise<PipelineHealthReport> } | null = null;
  return {
    report() {
      const now = Date.now();
      if (!last || now - last.at > cacheMs) last = { at: now, report: gather(s) };
      return last.report;
    },
  };
}

async function gather(s: HealthSources): Promise<PipelineHealthReport> {
  const now = (s.now ?? (() => new Date()))();
  const timeoutMs = s.timeoutMs ?? 2000;
  const [version, lag, dlq, oldest, held] = await Promise.all([
    within(timeoutMs, () => s.clamdVersion()),
    within(timeoutMs, () => s.receiveLag.read()),
    s.deadLetters ? within(timeoutMs, (signal) => s.deadLetters!.depth(signal)) : Promise.resolve(null),
    within(timeoutMs, async () => (await s.uploads.findStuck(now, 1))[0] ?? null),
    s.uploads.heldSummary ? within(timeoutMs, () => s.uploads.heldSummary!()) : Promise.resolve(null),
  ]);
  const signatures = signatureFacts(version.ok ? version.value : null, { now, maxAgeHours: s.maxAgeHours, testSignaturesMarker: s.testSignaturesMarker(), testDatabaseDate: s.testDatabaseDate() });

  const report: PipelineHealthReport = {
    checkedAt: now.toISOString(),
    clamd: version.ok ? { reachable: true, engine: version.value.engine, versionLine: version.value.raw } : { reachable: false, engine: null, versionLine: null, error: version.error },
    signatures,
    sqs: { receiveLag: null, deadLetters: null },
    processing: { oldest: null, stuckAfterSeconds: s.stuckAfterSeconds },
    held: null,
    flags: [],
  };
  if (lag.ok) report.sqs.receiveLag = lag.value && { lagMs: lag.value.lagMs, observedAt: lag.value.observedAt.toISOString(), messages: lag.value.messages };
  else report.sqs.receiveLagError = lag.error;
  if (dlq && dlq.ok) report.sqs.deadLetters = { queue: s.deadLetters!.label, depth: dlq.value.visible + dlq.value.delayed, inFlight: dlq.value.inFlight };
  else if (dlq) report.sqs.deadLettersError = dlq.error;
  if (oldest.ok) {
    const u = oldest.value;
    const ageSeconds = u ? Math.max(0, Math.round((now.getTime() - u.updatedAt.getTime()) / 1000)) : 0;
    report.processing.oldest = u && { id: u.id, tenantId: u.tenantId, status: u.status, since: u.updatedAt.toISOString(), ageSeconds, stuck: ageSeconds > s.stuckAfterSeconds };
  } else report.processing.error = oldest.error;
  if (held?.ok) {
    const since = held.value.oldestSince;
    report.held = { count: held.value.count, oldestSince: since?.toISOString() ?? null, oldestSeconds: since ? Math.max(0, Math.round((now.getTime() - since.getTime()) / 1000)) : 0 };
  } else if (held) report.heldError = held.error;
  report.flags = flagsOf(report);
  return report;
}

/** What an operator must look at, worst first. */
export function flagsOf(r: PipelineHealthReport): HealthFlag[] {
  const flags: HealthFlag[] = [];
  if (!r.clamd.reachable) flags.push({ code: "clamd_down", severity: "critical", message: `clamd does not answer (${r.clamd.error ?? "no reply"}): scans wait and retry, nothing is verified meanwhile` });
  const sig = r.signatures;
  if (sig.testSignaturesOnly) flags.push({ code: "test_signatures_only", severity: "critical", message: "clamd runs on TEST SIGNATURES ONLY (no official ClamAV database): uploads are NOT scanned for real malware" });
  if (sig.stale && r.clamd.reachable) {
    flags.push({
      code: "signatures_stale",
      severity: "warning",
      message: sig.ageHours === null ? "the signature database's age is unknown (clamd names no database date)" : `the signature database is ${sig.ageHours} hours old, past the ${sig.maxAgeHours} hours allowed: check freshclam`,
    });
  }
  if (r.held && r.held.count > 0) {
    flags.push({ code: "verdicts_held", severity: "critical", message: `${r.held.count} upload(s) held for fresh signatures, the longest for ${r.held.oldestSeconds} s: their clean verdicts are not issued until the signatures are updated (freshclam, or npm run signatures -- reload); they proceed by themselves then` });
  }
  const dlq = r.sqs.deadLetters;
  if (dlq && dlq.depth + dlq.inFlight > 0) flags.push({ code: "dead_letters", severity: "warning", message: `${dlq.depth + dlq.inFlight} message(s) in the dead-letter queue: storage events ingest could not handle` });
  const oldest = r.processing.oldest;
  if (oldest?.stuck) flags.push({ code: "uploads_stuck", severity: "warning", message: `the oldest upload in processing has been ${oldest.status} for ${oldest.ageSeconds} s (over ${r.processing.stuckAfterSeconds} s): the reaper re-queues it; look at its jobs if it stays` });
  for (const [what, error] of [["receive lag", r.sqs.receiveLagError], ["dead-letter queue", r.sqs.deadLettersError], ["uploads in processing", r.processing.error], ["held uploads", r.heldError]] as const) {
    if (error) flags.push({ code: "fact_unavailable", severity: "warning", message: `${what}: could not be read (${error})` });
  }
  return flags;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

async function within<T>(ms: number, fact: (signal: AbortSignal) => Promise<T>): Promise<Outcome<T>> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  try {
    const value = await Promise.race([
      fact(abort.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          abort.abort();
          reject(new Error(`no answer within ${ms} ms`));
        }, ms);
      }),
    ]);
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: shortReason(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** A code or a short message only: connection errors can quote URLs with credentials in them. */
export function shortReason(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string };
  return String(e?.code ?? (e?.message && e.message.length < 120 && !/[?@]/.test(e.message) ? e.message : e?.name) ?? "error");
}
