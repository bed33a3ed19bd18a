import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { contentDisposition, objectKey, recordedSize, type Upload, type Verdict } from "@intake/domain";
import { finalVerdict, scanVerdict } from "./decisions.ts";
import type { InspectionPolicy } from "./deps.ts";
import { contentChecksFor } from "./content-checks.ts";
import { needsScannedMd5, verifiedContentType } from "./finalize-decision.ts";
import { scanMetadata } from "./finalize.ts";
import { promotesStripped } from "./stripped-promotion.ts";
import { inspectObject, readHead, SNIFF_LIMIT } from "./inspect.ts";
import { decideVerdict, ensureNextStage, withHeartbeat, type StageJob } from "./progress.ts";
import type { ScanDeps } from "./scan.ts";
import type { UploadFindings } from "@intake/db";
import { lookUp, lookupResult, reportFromEntry, reusedMalware, scanContextOf } from "./verdict-cache.ts";
import { underOneVersion } from "./signature-watch.ts";

/**
 * The one-pass check, for uploads declared at most ONE_PASS_MAX_BYTES (most uploads:
 * avatars, photos, receipts). For them the pipeline's own overhead, not the scan, decides
 * throughput and latency, so one scan job does what the stages do, from one GET held in
 * memory: the size and the magic bytes (inspect), clamd, sha256 and the content checks
 * (scan), and the final object (finalize), which is PUT from the same bytes.
 *
 * The guarantees are the stages' and come cheaper here:
 * - the bytes checked are the bytes in hand, so no ETag has to bind a later read or copy
 *   to them, and a client that replaces the pending object meanwhile changes nothing: what
 *   reaches verified/ is what was checked. The PUT signs the scan's SHA-256 as its payload
 *   hash, so storage that checks signatures stores exactly those bytes or nothing;
 * - the row still passes through the state machine (inspecting, deciding, then verified or
 *   quarantined; `scanning` is skipped, there is no wait between read and scan to show), and
 *   the verdict is written before any object is, by the one run whose `decide` applies: a
 *   duplicate run (at-least-once jobs) that loses it writes nothing;
 * - a run that dies after its verdict leaves `deciding`: the retried job (or the reaper)
 *   hands the upload to the finalize stage, which promotes from the pending object by the
 *   ETag recorded here, as for any upload (finalize-decision.ts).
 */
export type OnePassDeps = ScanDeps & { policy: InspectionPolicy };

/** What the job reports (BullMQ keeps it as the job's return value): every stage, timed. */
export interface OnePassReport {
  path: "one-pass";
  verdict: "clean" | "quarantine" | "lost" | "held";
  ms: { inspect: number; scan: number; finalize: number };
}

export async function processOnePass(deps: OnePassDeps, upload: Upload, job: StageJob): Promise<OnePassReport | void> {
  const started = await deps.repository.transition(upload.id, "inspect", "inspect");
  if (!started.applied) return started.upload ? ensureNextStage(deps, started.upload) : undefined;
  if (job.attemptsMade > 0) await deps.repository.countAttempt(upload.id);
  const t0 = performance.now();

  // The whole object in one GET. The range stops at the declared size (at least the sniff
  // budget), so a client that stored more than it declared costs one bounded read: the
  // Content-Range names the real size, and the size check refuses it.
  const object = await readHead(deps.store, upload.objectKey, Math.max(recordedSize(upload) ?? 0, SNIFF_LIMIT));
  // The object was seen (S3 event or HeadObject on complete): missing now is an anomaly
  // worth a retry; on the last attempt it ends in quarantine like any failed check.
  if (!object) throw new Error(`object ${upload.objectKey} is missing`);
  const { verdict, findings } = await inspectObject(upload, object, deps.policy);
  const t1 = performance.now();
  // Held whole unless the object is larger than declared (the read stopped at the
  // declared size): the size check has refused it then, and finalize copies all of it.
  const whole = object.bytes.length === object.size;
  // A size or type refusal is final without clamd; the bytes are still hashed, so the
  // quarantined copy says what it holds.
  const scanned = verdict ? { verdict, sha256: whole ? sha256(object.bytes) : undefined, version: null, cache: {} } : await scanBytes(deps, { ...upload, ...findings }, object.bytes, object.size);
  Object.assign(findings, { sha256: scanned.sha256, ...(scanned.version ? { scannerVersion: scanned.version } : {}), ...scanned.cache });
  if (whole && object.eTag && needsScannedMd5(object.eTag)) findings.scannedMd5 = createHash("md5").update(object.bytes).digest("hex");
  const t2 = performance.now();

  const decided = await decideVerdict(deps, upload.id, "scan", scanned.verdict, findings);
  if (!decided.applied) {
    // Another run wrote the verdict: its outcome stands, and its bytes (not these) move on.
    if (decided.upload) await ensureNextStage(deps, decided.upload);
    return { path: "one-pass", verdict: "lost", ms: { inspect: t1 - t0, scan: t2 - t1, finalize: 0 } };
  }
  // Held (a clean result the signatures cannot back): no object is written; the worker's
  // signature watch resumes the upload once fresh signatures load.
  if (decided.upload.status !== "deciding") return { path: "one-pass", verdict: "held", ms: { inspect: t1 - t0, scan: t2 - t1, finalize: 0 } };
  // A clean image whose metadata is to be stripped goes to the finalize stage, which strips
  // it (stripped-promotion.ts): these bytes must not reach verified/ as they are.
  const inline = whole && scanned.sha256 && deps.finalizesInline && !promotesStripped(decided.upload);
  if (inline) await finalizeFromBytes(deps, decided.upload, object.bytes, scanned.sha256!);
  else await ensureNextStage(deps, decided.upload);
  const ms = { inspect: t1 - t0, scan: t2 - t1, finalize: performance.now() - t2 };
  deps.metrics?.stageDone("inspect", "one_pass", ms.inspect);
  deps.metrics?.stageDone("scan", "one_pass", ms.scan);
  if (inline) deps.metrics?.stageDone("finalize", "one_pass", ms.finalize);
  return { path: "one-pass", verdict: decided.upload.verdict === "clean" ? "clean" : "quarantine", ms };
}

/**
 * clamd, sha256 and the content checks over the bytes in hand: the scan stage's checks,
 * from memory. `upload` carries what the inspection found (the sniffed type decides which
 * content checks apply), as the row does when the scan stage reads it.
 */
export async function scanBytes(deps: OnePassDeps, upload: Upload, bytes: Buffer, size: number): Promise<{ verdict: Verdict; sha256: string; version: string; cache: Pick<UploadFindings, "scanContext" | "verdictFromCache"> }> {
  // `size` is the object's, as storage named it: a body that ended short is never taken
  // for the whole object (scanVerdict compares what clamd received against it).
  const checks = contentChecksFor({ upload, size, clamdLimits: deps.clamdLimits, activeContentAllowed: deps.activeContentAllowed });
  for (const check of checks) check.push(bytes);
  // The verdict cache (verdict-cache.ts), keyed by the sha256 of these bytes, hashed here:
  // a hit stands in for clamd's answer, every other check above still speaks.
  const cached = await cachedReport(deps, upload, bytes, size);
  // Fed in slices, as a GET would be: the scanner counts progress per chunk read, and one
  // chunk of megabytes held back by a slow clamd would look like a stalled source. The
  // heartbeat keeps the row fresh as in the scan stage (the reaper must not take a long
  // one-pass scan whose job Redis lost for a stuck one).
  // clamd's answer is recorded under the version read before it was asked, unchanged until
  // it answered (underOneVersion, signature-watch.ts).
  const scanning = cached ? null : await underOneVersion(deps.scannerVersion, () => withHeartbeat(deps, upload.id, () => deps.scanner.scan(Readable.from(slices(bytes, SCAN_SLICE_BYTES)))));
  const report = cached?.report ?? scanning!.value;
  const version = cached?.version ?? scanning!.version;
  // Every byte was pushed, so every check may speak (as in the scan stage, only then).
  const complete = report.bytes === size;
  const found = scanVerdict(report, { size, declaredSha256: upload.declaredSha256 });
  const verdict = finalVerdict(cached && found ? reusedMalware(found) : found, ...(complete ? checks.map((c) => c.finish()) : []));
  const cache = cached ? { scanContext: cached.scanContext, verdictFromCache: cached.from } : deps.verdictCache ? { scanContext: scanContextOf(deps.verdictCache, upload, deps.clamdLimits), verdictFromCache: null } : {};
  return { verdict, sha256: report.sha256, version, cache };
}

/**
 * clamd's answer from the verdict cache for the bytes in hand, or null (no cache, a miss,
 * or bytes that are not the whole object: only a whole object's sha256 names its content).
 */
async function cachedReport(deps: OnePassDeps, upload: Upload, bytes: Buffer, size: number) {
  const cache = deps.verdictCache;
  if (!cache || bytes.length !== size) return null;
  const scanContext = scanContextOf(cache, upload, deps.clamdLimits);
  const version = await deps.scannerVersion.get();
  const digest = sha256(bytes);
  const entry = await lookUp(cache, { sha256: digest, tenantId: upload.tenantId, signatureVersion: version, scanContext }, (err) => deps.logger.warn({ uploadId: upload.id, err }, "verdict cache lookup failed; scanning"));
  deps.metrics?.verdictCacheLookup?.(lookupResult(entry));
  if (!entry) return null;
  deps.logger.info({ uploadId: upload.id, outcome: entry.outcome, from: entry.sourceUploadId }, "verdict reused from the cache: clamd not asked");
  return { report: reportFromEntry(entry, bytes.length, digest), version, scanContext, from: entry.sourceUploadId };
}


/**
 * The final object, written from the checked bytes: verified/ for a clean verdict,
 * quarantine/ otherwise, each with its own type and `Content-Disposition: attachment` (as
 * finalize.ts copies them), then the pending object goes, then the status changes. A crash
 * in between leaves `deciding`, which the finalize stage settles from what it finds.
 */
async function finalizeFromBytes(deps: OnePassDeps, upload: Upload, bytes: Buffer, sha256Hex: string): Promise<void> {
  const clean = upload.verdict === "clean";
  const target = objectKey(clean ? "verified" : "quarantine", upload.tenantId, upload.id);
  await deps.store.put(target, bytes, {
    contentType: clean ? verifiedContentType(upload) : "application/octet-stream",
    contentDisposition: contentDisposition(upload.filename),
    metadata: scanMetadata(upload),
    sha256Hex,
  });
  await deps.store.delete(upload.objectKey);
  const done = await deps.repository.transition(upload.id, clean ? "promote" : "quarantine", "finalize", { finalKey: target });
  if (done.applied) {
    deps.logger.info({ uploadId: upload.id, status: done.upload.status, reason: done.upload.reason, finalKey: target }, "upload finalized");
    deps.metrics?.uploadFinished(done.upload);
  }
}

const SCAN_SLICE_BYTES = 64 * 1024;

function* slices(bytes: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}
