import { createHash, randomUUID } from "node:crypto";
import { arrivedSize, contentDisposition, objectKey, quarantine, recordedSize, type ReleaseDetail, type RecheckOutcome, type Upload, type Verdict } from "@intake/domain";
import type { UploadFindings } from "@intake/db";
import { ObjectChangedError } from "@intake/storage";
import type { InspectionPolicy, Scanner } from "./deps.ts";
import { stagingKey, verifiedContentType } from "./finalize-decision.ts";
import { scanMetadata } from "./finalize.ts";
import { inspectObject, readHead, SNIFF_LIMIT } from "./inspect.ts";
import { scanBytes } from "./one-pass.ts";
import { UploadGoneError, isLastAttempt, verdictFindings, type StageJob } from "./progress.ts";
import { scanObject, type ScanDeps } from "./scan.ts";
import { StagedCopy } from "./staged-copy.ts";
import { copyStripped, stripReleased, strippedFindings, type StrippedCopy } from "./stripped-promotion.ts";

/**
 * The recheck of a released upload (status `rechecking`): the quarantined object is read
 * again and goes through every check the pipeline runs, with today's signatures — the same
 * inspection (inspectObject: size, magic bytes against the policy) and the same scan with
 * the same content checks, from memory as the one-pass check does (scanBytes) or streamed
 * as the scan stage does (scanObject) for a large object. No check list of its own.
 *
 * Clean: the bytes are written to verified/ (from memory with the scan's SHA-256 as the
 * PUT's signed payload hash, or from a staging copy made from the scanned bytes), the
 * status changes to `verified`, and only then is the quarantined object deleted. Anything
 * else — a finding, an error on the last attempt, bytes that are not the ones quarantined,
 * an override that is not approved — ends back in `quarantined` with the new finding on the
 * row, and the object stays where it is. Fail closed: a clamd error is retried, never read
 * as a pass.
 *
 * An override (two admins, for a malware finding) accepts the one signature it names and
 * nothing else: a scanner answer naming that signature counts as clean for this recheck, any
 * other signature, and every other check, still decides. clamd reports the first signature
 * it matches (AllMatchScan is off), so a second signature behind the accepted one in the
 * same object is not seen: see the runbook.
 *
 * At least once: a duplicate job finds the status changed and only finishes the clean-up;
 * two runs racing both check, one transition applies, and a promoted copy whose run lost to
 * a quarantine is deleted again.
 */
export type RecheckDeps = ScanDeps & {
  policy: InspectionPolicy;
  releases: ReleaseRecords;
  /** Objects declared at most this size are read into memory; larger ones stream. */
  inMemoryMaxBytes: number;
};

/** The release a recheck carries out (@intake/db's QuarantineReview is one). */
export interface ReleaseRecords {
  releaseDetail(uploadId: string): Promise<ReleaseDetail | null>;
  override(id: string): Promise<{ id: string; uploadId: string; status: string; signature: string | null } | null>;
}

export interface RecheckReport {
  path: "recheck";
  outcome: "verified" | "quarantined" | "lost";
  reason: string | null;
}

interface Checked {
  verdict: Verdict;
  findings: UploadFindings;
  /** Where the clean bytes come from: held in memory, or a staging copy. */
  source: { bytes: Buffer } | { staged: StagedCopy } | null;
  accepted: { signature: string; found: boolean } | null;
}

export async function processRecheck(deps: RecheckDeps, job: StageJob): Promise<RecheckReport | void> {
  const { uploadId } = job.data;
  const upload = await deps.repository.getById(uploadId);
  if (!upload) throw new UploadGoneError(uploadId);
  if (upload.status !== "rechecking") return finishCleanUp(deps, upload);
  if (job.attemptsMade > 0) await deps.repository.countAttempt(uploadId);
  const release = await deps.releases.releaseDetail(uploadId);
  let checked: Checked;
  try {
    checked = await recheck(deps, upload, release);
  } catch (err) {
    if (err instanceof UploadGoneError || !isLastAttempt(job)) throw err;
    deps.logger.error({ uploadId, err }, "the recheck kept failing until retries ran out; back to quarantine (fail closed)");
    checked = { verdict: quarantine("scan_error", `the recheck failed on every attempt: ${(err as Error).message}`), findings: {}, source: null, accepted: null };
  }
  return conclude(deps, upload, release, checked);
}

async function recheck(deps: RecheckDeps, upload: Upload, release: ReleaseDetail | null): Promise<Checked> {
  const refused = (verdict: Verdict): Checked => ({ verdict, findings: {}, source: null, accepted: null });
  if (!release) return refused(quarantine(upload.reason ?? "scan_error", "rechecking without a recorded release: nothing says who released it, so it stays quarantined"));
  const accepted = await acceptedSignature(deps, upload, release);
  if (accepted && "refusal" in accepted) return refused(accepted.refusal);
  const seen = accepted ? { signature: accepted.signature, found: false } : null;
  const scanner = seen ? acceptingOnly(deps.scanner, seen) : deps.scanner;
  const d: RecheckDeps = { ...deps, scanner };
  const key = quarantineKeyOf(upload);
  // A released upload arrived, so it has a recorded size; without one, the streamed path.
  const checked = (recordedSize(upload) ?? Infinity) <= deps.inMemoryMaxBytes ? await checkInMemory(d, upload, key) : await checkStreamed(d, upload, key);
  return { ...checked, accepted: seen };
}

/** As the one-pass check: one read of the whole object (bounded by the declared size), then every check from memory. */
async function checkInMemory(deps: RecheckDeps, upload: Upload, key: string): Promise<Omit<Checked, "accepted">> {
  const object = await readHead(deps.store, key, Math.max(recordedSize(upload) ?? 0, SNIFF_LIMIT));
  if (!object) return { verdict: quarantineObjectMissing(key), findings: {}, source: null };
  const { verdict, findings } = await inspectObject(upload, object, deps.policy);
  const whole = object.bytes.length === object.size;
  if (verdict) return { verdict, findings: { ...findings, ...(whole ? { sha256: sha256(object.bytes) } : {}) }, source: null };
  const scanned = await scanBytes(deps, { ...upload, ...findings } as Upload, object.bytes, object.size);
  return { verdict: scanned.verdict, findings: { ...findings, sha256: scanned.sha256, scannerVersion: scanned.version }, source: { bytes: object.bytes } };
}

/**
 * As the stages: the head for the inspection, then one streamed read of that version (by
 * its ETag) into clamd and the content checks, with a staging copy made from the same bytes.
 */
async function checkStreamed(deps: RecheckDeps, upload: Upload, key: string): Promise<Omit<Checked, "accepted">> {
  const head = await readHead(deps.store, key);
  if (!head) return { verdict: quarantineObjectMissing(key), findings: {}, source: null };
  const { verdict, findings } = await inspectObject(upload, head, deps.policy);
  if (verdict) return { verdict, findings, source: null };
  let object;
  try {
    object = head.eTag ? await deps.store.read(key, { ifMatch: head.eTag }) : null;
  } catch (err) {
    if (err instanceof ObjectChangedError) return { verdict: quarantine("checksum_mismatch", "the quarantined object changed while it was rechecked"), findings, source: null };
    throw err;
  }
  if (!object) return { verdict: quarantine("scan_error", "the quarantined object has no ETag or vanished: nothing names the version inspected"), findings, source: null };
  const staged = await StagedCopy.open(deps.store, stagingKey(upload, randomUUID()));
  try {
    const scanned = await scanObject(deps, { ...upload, ...findings } as Upload, object, staged);
    if (scanned.verdict.outcome === "clean" && staged.complete) return { verdict: scanned.verdict, findings: { ...findings, ...scanned.findings }, source: { staged } };
    await staged.discard();
    return { verdict: scanned.verdict, findings: { ...findings, ...scanned.findings }, source: null };
  } catch (err) {
    await staged.discard().catch(() => undefined);
    throw err;
  }
}

/**
 * The signature an override accepts, from the approved override the release names; null for
 * a release without one. A release naming an override that is not approved, or not this
 * upload's, is refused.
 */
async function acceptedSignature(deps: RecheckDeps, upload: Upload, release: ReleaseDetail): Promise<{ signature: string } | { refusal: Verdict } | null> {
  const named = release.request.override;
  if (release.request.kind !== "override" || !named) return null;
  const o = await deps.releases.override(named.id);
  if (!o || o.uploadId !== upload.id || o.status !== "approved" || !o.signature || o.signature !== named.signature) {
    return { refusal: quarantine(upload.reason ?? "malware", `the release names override ${named.id}, which is not an approved override of this upload's signature`, upload.signature ?? undefined) };
  }
  return { signature: o.signature };
}

/** The scanner as an override sees it: the one accepted signature reads as clean, nothing else changes. */
function acceptingOnly(scanner: Scanner, seen: { signature: string; found: boolean }): Scanner {
  return {
    version: () => scanner.version(),
    scan: async (stream) => {
      const report = await scanner.scan(stream);
      if (report.outcome !== "infected" || report.signature !== seen.signature) return report;
      seen.found = true;
      return { outcome: "clean", bytes: report.bytes, sha256: report.sha256 };
    },
  };
}

async function conclude(deps: RecheckDeps, upload: Upload, release: ReleaseDetail | null, checked: Checked): Promise<RecheckReport> {
  let verdict = checked.verdict;
  // The bytes must be the ones that were quarantined: anything else was never reviewed.
  if (verdict.outcome === "clean" && upload.sha256 && checked.findings.sha256 !== upload.sha256) {
    verdict = quarantine("checksum_mismatch", `the quarantined bytes changed since they were quarantined: sha256 ${checked.findings.sha256 ?? "unknown"}, recorded ${upload.sha256}`);
  }
  const scanner = checked.findings.scannerVersion ?? (await deps.scannerVersion.get().catch(() => null));
  const outcome = (status: RecheckOutcome["status"]): string =>
    JSON.stringify({
      request: release?.request,
      outcome: {
        at: new Date().toISOString(),
        status,
        reason: verdict.outcome === "clean" ? null : verdict.reason,
        detail: verdict.outcome === "clean" ? null : verdict.detail,
        scanner,
        sha256: checked.findings.sha256 ?? null,
        originalSha256: upload.sha256,
        acceptedSignature: checked.accepted?.signature ?? null,
        acceptedSignatureFound: checked.accepted?.found ?? false,
      } satisfies RecheckOutcome,
    });
  // A clean result is only as good as the signatures it was made with (signature-watch.ts):
  // with stale or unaccepted test signatures the release waits, still `rechecking`, and the
  // job retries with its backoff (then the reaper re-queues it) until fresh ones load. A
  // finding still sends it back to quarantine at once.
  const hold = verdict.outcome === "clean" && deps.signatures ? await deps.signatures.holdReason() : null;
  if (hold) {
    if (checked.source && "staged" in checked.source) await checked.source.staged.discard().catch(() => undefined);
    deps.logger.warn({ uploadId: upload.id, hold }, "recheck: clean, but the signatures cannot back a release yet; it waits for fresh ones");
    deps.metrics?.verdictHeld?.(hold);
    throw new ReleaseHeldError(upload.id, hold);
  }
  // An upload that asked for its image metadata stripped is released only as a stripped copy.
  const stripped = verdict.outcome === "clean" && checked.source ? await stripReleased(deps, { ...upload, ...checked.findings }, checked.source) : null;
  if (stripped?.kind === "refused") verdict = stripped.verdict;
  else if (verdict.outcome === "clean" && checked.source) return promote(deps, upload, checked, outcome("verified"), stripped);
  if (checked.source && "staged" in checked.source) await checked.source.staged.discard().catch(() => undefined);
  const findings: UploadFindings = { ...checked.findings, ...(scanner ? { scannerVersion: scanner } : {}), ...verdictFindings(verdict.outcome === "clean" ? quarantine("scan_error", "the recheck passed but has no bytes to promote") : verdict), releaseDetail: outcome("quarantined") };
  const done = await deps.repository.transition(upload.id, "quarantine", "recheck", findings);
  if (done.applied) {
    deps.logger.info({ uploadId: upload.id, reason: done.upload.reason, detail: done.upload.reasonDetail }, "recheck: stays quarantined");
    deps.metrics?.recheckFinished(done.upload);
  }
  return { path: "recheck", outcome: done.applied ? "quarantined" : "lost", reason: done.upload?.reason ?? null };
}

/**
 * verified/ from the checked bytes, then the status, then the quarantined object goes. The
 * verified row keeps what was originally caught (reason, signature: the record of the
 * quarantine outlives the release); verdict, scanner and sha256 are the recheck's.
 */
async function promote(deps: RecheckDeps, upload: Upload, checked: Checked, releaseDetail: string, stripped: StrippedCopy | null): Promise<RecheckReport> {
  const target = objectKey("verified", upload.tenantId, upload.id);
  const promoted = { ...upload, ...checked.findings, verdict: "clean" as const, reason: null, reasonDetail: null, signature: null };
  const meta = { contentType: verifiedContentType(upload), contentDisposition: contentDisposition(upload.filename), metadata: scanMetadata(promoted) };
  const source = checked.source!;
  if (stripped) {
    await copyStripped(deps.store, upload, stripped, target, meta.metadata);
  } else if ("bytes" in source) {
    await deps.store.put(target, source.bytes, { ...meta, sha256Hex: checked.findings.sha256! });
  } else {
    try {
      await deps.store.copy(source.staged.key, target, { ...meta, size: checked.findings.storedSize ?? arrivedSize(upload) });
    } finally {
      await deps.store.delete(source.staged.key);
    }
  }
  const done = await deps.repository.transition(upload.id, "promote", "recheck", { ...checked.findings, verdict: "clean", finalKey: target, releaseDetail, ...(stripped ? strippedFindings(stripped) : {}) });
  if (!done.applied) {
    // Another run ended it first. Only a verified upload may keep a verified/ object.
    if (done.upload?.status !== "verified") await deps.store.delete(target);
    if (done.upload) await finishCleanUp(deps, done.upload);
    return { path: "recheck", outcome: "lost", reason: done.upload?.reason ?? null };
  }
  deps.metrics?.recheckFinished(done.upload);
  await deps.store.delete(quarantineKeyOf(upload));
  deps.logger.info({ uploadId: upload.id, finalKey: target }, "recheck passed: released to verified");
  return { path: "recheck", outcome: "verified", reason: null };
}

/** A duplicate or late job: a verified upload's quarantined copy may still be there (a run that died after the status change). */
async function finishCleanUp(deps: RecheckDeps, upload: Upload): Promise<void> {
  if (upload.status === "verified" && upload.finalKey === objectKey("verified", upload.tenantId, upload.id)) {
    await deps.store.delete(objectKey("quarantine", upload.tenantId, upload.id));
  }
}

function quarantineKeyOf(upload: Upload): string {
  return upload.finalKey ?? objectKey("quarantine", upload.tenantId, upload.id);
}

function quarantineObjectMissing(key: string): Verdict {
  return quarantine("scan_error", `the quarantined object ${key} is missing: nothing to recheck`);
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A release's recheck found the object clean while the signatures could not back a release (retried). */
export class ReleaseHeldError extends Error {
  readonly code = "release_held" as const;
  constructor(uploadId: string, reason: string) {
    super(`upload ${uploadId}: the recheck is clean but the signatures are ${reason === "signatures_stale" ? "too old" : "test signatures only"}; the release waits for fresh signatures`);
    this.name = "ReleaseHeldError";
  }
}
