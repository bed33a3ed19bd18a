import { createHash, type Hash } from "node:crypto";
import { pipeline, Transform } from "node:stream";
import { quarantine, type ActiveContentReason, type Upload, type Verdict } from "@intake/domain";
import type { UploadFindings } from "@intake/db";
import { ObjectChangedError, type ObjectRead } from "@intake/storage";
import { fileTypeFromBuffer } from "file-type";
import { finalVerdict, scanVerdict } from "./decisions.ts";
import { SNIFF_LIMIT } from "./inspect.ts";
import { needsScannedMd5 } from "./finalize-decision.ts";
import type { InspectionPolicy, Scanner, StageDeps } from "./deps.ts";
import { isOnePass } from "./decisions.ts";
import { processOnePass, type OnePassReport } from "./one-pass.ts";
import { UploadGoneError, decideVerdict, ensureNextStage, isLastAttempt, recordVerdict, withHeartbeat, type StageJob } from "./progress.ts";
import { StagedCopy } from "./staged-copy.ts";
import { promoteStaged } from "./finalize.ts";
import { stagingKey } from "./finalize-decision.ts";
import { randomUUID } from "node:crypto";
import { contentChecksFor, type ClamdLimits, type ContentCheck } from "./content-checks.ts";
import { imageToStrip } from "@intake/domain";
import { lookUp, lookupResult, reportFromEntry, reusedMalware, scanContextOf, storageProvenSha256, type VerdictCache } from "./verdict-cache.ts";
import { clean, type VerdictCacheEntry } from "@intake/domain";
import { underOneVersion } from "./signature-watch.ts";

/**
 * The scan stage: the object streams from storage into clamd INSTREAM once; the scanner
 * hashes the same bytes (sha256) and text formats are content-checked on the same pass.
 * Nothing is buffered whole and nothing touches local disk, so memory stays flat whatever
 * the object size.
 *
 * Fail closed: a scanner failure (clamd down, dropped connection, empty reply, timeout:
 * ScanFailedError) is thrown so BullMQ retries with exponential backoff; on the last
 * attempt the upload is quarantined with scan_error instead. Nothing here can produce a
 * clean verdict without clamd having said OK about every byte of the object.
 */
export type ScanDeps = StageDeps & {
  scanner: Scanner;
  /** The signature version a verdict records (SignatureWatch in a worker; ScannerVersionCache: the VERSION line). */
  scannerVersion: { get(): Promise<string> };
  /** clamd's MaxFileSize and MaxScanSize, for the ZIP check below. */
  clamdLimits: ClamdLimits;
  /** Active content the policy lets through (config ACTIVE_CONTENT_ALLOW); absent: none. */
  activeContentAllowed?: readonly ActiveContentReason[];
  /**
   * How often a running scan touches its row: well inside the reaper's STUCK_AFTER_SECONDS
   * (a third of it), so the reaper never takes a scan that is still going for a lost one.
   */
  heartbeatMs: number;
  /** The upload rules, for uploads checked in one pass (one-pass.ts); absent: none is. */
  policy?: InspectionPolicy;
  /** The verdict cache (verdict-cache.ts); absent: clamd scans every upload. */
  verdictCache?: VerdictCache;
};

export async function processScan(deps: ScanDeps, job: StageJob): Promise<OnePassReport | void> {
  const { uploadId } = job.data;
  const upload = await deps.repository.getById(uploadId);
  if (!upload) throw new UploadGoneError(uploadId);
  const onePass = (upload.status === "uploaded" || upload.status === "inspecting") && deps.policy !== undefined && isOnePass(upload, deps.onePassMaxBytes ?? 0);
  if (!onePass && upload.status !== "scanning") return ensureNextStage(deps, upload);
  try {
    return onePass ? await processOnePass({ ...deps, policy: deps.policy! }, upload, job) : await scanStaged(deps, upload, job);
  } catch (err) {
    if (err instanceof UploadGoneError || !isLastAttempt(job)) throw err;
    const what = onePass ? "the check" : "scan";
    deps.logger.error({ uploadId, err }, `${what} kept failing until retries ran out; quarantining (fail closed)`);
    await recordVerdict(deps, uploadId, "scan", quarantine("scan_error", `${what} failed on every attempt: ${(err as Error).message}`), {});
  }
}

/** The scan of an upload that went through inspect (status `scanning`). */
async function scanStaged(deps: ScanDeps, upload: Upload, job: StageJob): Promise<void> {
  const uploadId = upload.id;
  // Re-entry (scanning -> scanning) stamps the attempt; a lost race leaves the winner's state.
  const started = await deps.repository.transition(uploadId, "scan", "scan");
  if (!started.applied) return started.upload ? ensureNextStage(deps, started.upload) : undefined;
  if (job.attemptsMade > 0) await deps.repository.countAttempt(uploadId);
  const t0 = performance.now();
  // The verdict cache, by the sha256 storage proved or the client declared (only a hint: the
  // bytes read below are hashed, and a hint they do not bear out is scanned by clamd).
  const hint = deps.verdictCache ? await hintFor(deps, deps.verdictCache, upload) : null;
  if (hint?.proven && hint.entry.outcome === "malware") {
    // Storage verified these bytes' sha256 and clamd found malware in such bytes: quarantined
    // without reading them (finalize copies the checked version to quarantine/).
    deps.metrics?.verdictCacheLookup?.("hit_malware");
    await recordVerdict(deps, uploadId, "scan", reusedMalware(reportVerdict(hint.entry)), { sha256: hint.sha256, scannerVersion: hint.version, scanContext: hint.scanContext, verdictFromCache: hint.entry.sourceUploadId });
    return;
  }
  const object = await readChecked(deps, upload);
  if (!("body" in object)) {
    await recordVerdict(deps, uploadId, "scan", object, {});
    return;
  }
  // No staging copy of the scanned bytes for an upload whose image metadata is to be
  // stripped: verified/ must never get those bytes; the finalize stage strips them.
  if (!deps.finalizesInline || imageToStrip(upload)) {
    const first = await scanObject(deps, upload, object, null, hint?.entry ?? null);
    // A hint the bytes did not bear out: clamd scans them after all (a second read).
    const { verdict, findings } = first.hintMissed ? await rescanWithoutHint(deps, upload, null) : first;
    await recordVerdict(deps, uploadId, "scan", verdict, findings);
    deps.metrics?.stageDone("scan", "staged", performance.now() - t0);
    return;
  }
  // The copy that promotion will use, made from the bytes as they are scanned (staged-copy.ts).
  let staged = await StagedCopy.open(deps.store, stagingKey(upload, randomUUID()));
  let scanned: Awaited<ReturnType<typeof scanObject>>;
  try {
    scanned = await scanObject(deps, upload, object, staged, hint?.entry ?? null);
    if (scanned.hintMissed) {
      await staged.discard();
      staged = await StagedCopy.open(deps.store, stagingKey(upload, randomUUID()));
      scanned = await rescanWithoutHint(deps, upload, staged);
    }
  } catch (err) {
    await staged.discard().catch((e: unknown) => deps.logger.warn({ uploadId, err: e }, "could not remove the staging copy of a failed scan"));
    throw err;
  }
  const decided = await decideVerdict(deps, uploadId, "scan", scanned.verdict, scanned.findings);
  deps.metrics?.stageDone("scan", "staged", performance.now() - t0);
  // The run that wrote the verdict promotes from its own copy; any other outcome (another
  // run's verdict, a quarantine) leaves the upload to the finalize stage.
  if (decided.applied && decided.upload.status === "deciding" && decided.upload.verdict === "clean" && staged.complete) return promoteStaged(deps, decided.upload, staged.key);
  await staged.discard().catch((e: unknown) => deps.logger.warn({ uploadId, err: e }, "could not remove a staging copy that will not be promoted"));
  if (decided.upload) await ensureNextStage(deps, decided.upload);
}

/**
 * The version inspect checked, or the verdict when there is none to read. The GET carries
 * its ETag (If-Match, upheld by the store even where storage ignores the header): bytes
 * replaced since are refused, not scanned. A GET streams one version from its first byte
 * to its last, so no HeadObject is needed before or after. Without that ETag nothing names
 * the bytes inspect checked, and no read can recover it (a retry would read the same
 * nothing): fail closed, no scan and no promotion.
 */
async function readChecked(deps: ScanDeps, upload: Upload): Promise<ObjectRead | Verdict> {
  if (!upload.checkedETag) return noCheckedVersion();
  try {
    const object = await deps.store.read(upload.objectKey, { ifMatch: upload.checkedETag });
    if (!object) throw new Error(`object ${upload.objectKey} is missing`);
    return object;
  } catch (err) {
    if (err instanceof ObjectChangedError) return objectReplaced();
    throw err;
  }
}

/** One pass over the bytes: clamd, sha256 (and MD5 for a multipart ETag), the start's type, the content checks. */
export async function scanObject(deps: ScanDeps, upload: Upload, object: ObjectRead, staged: StagedCopy | null, hint: VerdictCacheEntry | null = null): Promise<{ verdict: Verdict; findings: UploadFindings; hintMissed?: boolean }> {
  // A multipart ETag is not an MD5 of the bytes, and some stores give the promoted copy
  // a recomputed one: hash the bytes once here so finalize can confirm such a copy.
  const md5 = needsScannedMd5(upload.checkedETag!) ? createHash("md5") : null;
  const { size } = object;
  const checks = contentChecksFor({ upload, size, clamdLimits: deps.clamdLimits, activeContentAllowed: deps.activeContentAllowed });
  const start = new HeadTap(SNIFF_LIMIT);
  const read = staged ? pipeline(object.body, staged, () => undefined) : object.body;
  const body = md5 ? pipeline(read, digestTap(md5), () => undefined) : read;
  const observed = pipeline(body, start, observer(checks), () => undefined);
  // With a cache entry in hand clamd is not fed: the same pass only counts and hashes the
  // bytes, and the entry stands for clamd's answer only if they are the bytes it names.
  // clamd's answer is recorded under the version read before it was asked, unchanged until
  // it answered (underOneVersion); a clean entry stands for clamd under its own version.
  const scanning = hint ? null : await underOneVersion(deps.scannerVersion, () => withHeartbeat(deps, upload.id, () => deps.scanner.scan(observed)));
  const hashed = hint ? await withHeartbeat(deps, upload.id, () => hashOnly(observed)) : null;
  const scannedReport = scanning?.value ?? null;
  const version = scanning?.version ?? (hint!.outcome === "clean" ? hint!.signatureVersion : await deps.scannerVersion.get());
  const cache = deps.verdictCache ? { scanContext: scanContextOf(deps.verdictCache, upload, deps.clamdLimits), verdictFromCache: null as string | null } : {};
  if (hashed && (hashed.sha256 !== hint!.sha256 || hashed.bytes !== size)) return { verdict: clean(), findings: {}, hintMissed: true };
  if (hint) {
    deps.metrics?.verdictCacheLookup?.(lookupResult(hint));
    Object.assign(cache, { verdictFromCache: hint.sourceUploadId });
  } else if (deps.verdictCache && upload.declaredSha256) deps.metrics?.verdictCacheLookup?.("miss");
  const report = scannedReport ?? reportFromEntry(hint!, hashed!.bytes, hashed!.sha256);

  // The content checks speak only about an object they saw whole.
  const complete = report.bytes === size;
  const found = scanVerdict(report, { size, declaredSha256: upload.declaredSha256 });
  const verdict = finalVerdict(
    hint && found ? reusedMalware(found) : found,
    complete ? await sameStart(upload.sniffedType, start.bytes()) : null,
    ...(complete ? checks.map((c) => c.finish()) : []),
  );
  return { verdict, findings: { sha256: report.sha256, scannerVersion: version, ...cache, ...(md5 && complete ? { scannedMd5: md5.digest("hex") } : {}) } };
}

/** The checked version read again and scanned by clamd: a cache hint its bytes did not bear out. */
async function rescanWithoutHint(deps: ScanDeps, upload: Upload, staged: StagedCopy | null): Promise<{ verdict: Verdict; findings: UploadFindings }> {
  deps.logger.info({ uploadId: upload.id }, "verdict cache: the bytes read are not the ones the hint named; scanning them");
  const again = await readChecked(deps, upload);
  if (!("body" in again)) return { verdict: again, findings: {} };
  return scanObject(deps, upload, again, staged, null);
}

/** Counts and hashes a body to its end (the bytes still flow through every tap before it). */
async function hashOnly(body: NodeJS.ReadableStream): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest("hex") };
}

/**
 * The cache entry to try for a staged upload before its bytes are read, keyed by the sha256
 * storage proved for the checked version (verifiedSha256 on a store whose capabilities say it
 * verifies x-amz-checksum-sha256: storageProvenSha256), else the one the client declared.
 * Only a proven key lets a malware entry skip the read; any other hit is confirmed by the
 * sha256 of the bytes read.
 */
async function hintFor(deps: ScanDeps, cache: VerdictCache, upload: Upload) {
  const head = deps.store.capabilities.verifiesSha256Checksum ? await deps.store.head(upload.objectKey) : null;
  const proven = head ? storageProvenSha256(upload, head, deps.store.capabilities) : null;
  const sha256 = proven ?? upload.declaredSha256?.toLowerCase() ?? null;
  if (!sha256) return null;
  const version = await deps.scannerVersion.get();
  const scanContext = scanContextOf(cache, upload, deps.clamdLimits);
  const entry = await lookUp(cache, { sha256, tenantId: upload.tenantId, signatureVersion: version, scanContext }, (err) => deps.logger.warn({ uploadId: upload.id, err }, "verdict cache lookup failed; scanning"));
  return entry ? { entry, sha256, version, scanContext, proven: proven !== null } : null;
}

function reportVerdict(entry: VerdictCacheEntry): Verdict {
  return quarantine("malware", `clamd found ${entry.signature ?? "unknown"}`, entry.signature ?? "unknown");
}

function noCheckedVersion() {
  return quarantine("scan_error", "no checked ETag on the upload: nothing names the version inspect checked, so no bytes may be scanned or promoted");
}

/**
 * The type check happened in inspect, on the first SNIFF_LIMIT bytes of the version with
 * the checked ETag; scan reads "the same version" by that ETag alone. An ETag is an MD5,
 * and MD5 collisions can be made at will: a replacement built to collide passes If-Match,
 * and is scanned and hashed here as if it were the inspected object. Its start then names
 * another type (file-type on the same bytes gives the same answer, so any difference means
 * other bytes); a collision that keeps the start keeps the type, and the rest is scanned.
 */
async function sameStart(inspected: string | null, head: Buffer) {
  const sniffed = (await fileTypeFromBuffer(head))?.mime ?? null;
  if (sniffed === inspected) return null;
  return quarantine("checksum_mismatch", `the bytes scanned do not begin as the bytes inspected (${sniffed ?? "unknown type"}, inspected as ${inspected ?? "unknown type"}): the object was replaced by one with the same ETag`);
}

/** Keeps a copy of the first `limit` bytes passing through. */
class HeadTap extends Transform {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private readonly limit: number;
  constructor(limit: number) {
    super();
    this.limit = limit;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err: null, chunk: Buffer) => void): void {
    if (this.kept < this.limit) {
      const part = chunk.subarray(0, this.limit - this.kept);
      this.chunks.push(Buffer.from(part));
      this.kept += part.length;
    }
    done(null, chunk);
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.kept);
  }
}

/** Feeds every chunk to `hash` on its way through (one pass over the bytes, no buffering). */
function digestTap(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
}

function objectReplaced() {
  return quarantine("checksum_mismatch", "the pending object was replaced while it was being checked: the stored bytes are not the bytes that were checked");
}

/** Passes chunks through unchanged, feeding the content checks on the way. */
function observer(checks: readonly ContentCheck[]): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      for (const check of checks) check.push(chunk);
      done(null, chunk);
    },
  });
}

/**
 * clamd's engine and signature database version, recorded with every verdict. Asked at
 * most once per `ttlMs`: freshclam reloads databases while clamd runs, so it can change.
 */
export class ScannerVersionCache {
  private readonly scanner: Pick<Scanner, "version">;
  private readonly ttlMs: number;
  private cached: { value: ScannerVersionInfo; at: number } | null = null;
  constructor(scanner: Pick<Scanner, "version">, ttlMs = 60_000) {
    this.scanner = scanner;
    this.ttlMs = ttlMs;
  }
  /** The VERSION line, as recorded with verdicts. */
  async get(): Promise<string> {
    return (await this.details()).raw;
  }
  async details(): Promise<ScannerVersionInfo> {
    if (this.cached && Date.now() - this.cached.at < this.ttlMs) return this.cached.value;
    const value = await this.scanner.version();
    this.cached = { value, at: Date.now() };
    return value;
  }
}

type ScannerVersionInfo = Awaited<ReturnType<Scanner["version"]>>;
