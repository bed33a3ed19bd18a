import type { Job } from "bullmq";
import { contentDisposition, objectKey, quarantine, type Upload, type Verdict } from "@intake/domain";
import { Statement, type RescanOutcome, type RescanRunRepository, type TransitionOptions, type TransitionResult, type UploadFindings } from "@intake/db";
import { ObjectChangedError, type ObjectStore } from "@intake/storage";
import type { PipelineLogger, Scanner, UploadStore } from "./deps.ts";
import { scanMetadata } from "./finalize.ts";
import type { RescanJobData } from "./rescan-queue.ts";
import type { RescanShare } from "./rescan-share.ts";
import { underOneVersion } from "./signature-watch.ts";

/**
 * The rescan of a verified upload after a signature update (issue 12 §6): its verified
 * object, read by the ETag it has now (one version, start to end), is scanned again with
 * today's signatures.
 *
 * - Still clean: the newer signature version is recorded on the row (rescan_pass); nothing
 *   else changes (no audit row, no webhook: the verdict stands).
 * - A match: the finding is fixed first (rescan_match: verified -> quarantining, reason
 *   malware_on_rescan with the signature; from this commit on no download is signed), then
 *   the object is copied to quarantine/ (by the ETag that was scanned), the verified/ copy
 *   deleted, and only then the status (rescan_quarantine -> quarantined, with its audit row
 *   and the upload.quarantined webhook in the same unit). A job that dies anywhere in
 *   between is retried (or queued again by the planner from the row) and finishes the same
 *   steps from where they stand: at rest the object is under one prefix only.
 * - Bytes that are not the ones verified (the recorded sha256): quarantined the same way as
 *   checksum_mismatch. Fail closed.
 *
 * A scan that keeps failing leaves the upload verified under its old clearance (what it was
 * before the rescan) and the item `failed`, shown to operators; it is never read as a pass.
 * Quotas: untouched (the rescan's events are outside the pipeline's, upload-state.ts).
 */
export interface RescanDeps {
  repository: UploadStore & { transition(id: string, event: Parameters<UploadStore["transition"]>[1], actor: Parameters<UploadStore["transition"]>[2], findings?: UploadFindings, now?: Date, opts?: TransitionOptions): Promise<TransitionResult> };
  runs: Pick<RescanRunRepository, "get" | "itemOutcome" | "finishItem">;
  store: ObjectStore;
  scanner: Pick<Scanner, "scan">;
  /** The signature version verdicts record (the worker's SignatureWatch). */
  signatures: { get(): Promise<string> };
  share: Pick<RescanShare, "acquire">;
  logger: PipelineLogger;
  /** Days a quarantined object is kept when the upload's policy names none (QUARANTINE_RETENTION_DAYS). */
  quarantineRetentionDays: number;
  /** Counts per outcome and bytes scanned (@intake/metrics); absent: nowhere. */
  onItem?: (outcome: Exclude<RescanOutcome, "queued">, bytes: number) => void;
  /** Test seam: called between the steps of a move ("copied", "deleted"). */
  onMoveStep?: (step: "copied" | "deleted", upload: Upload) => Promise<void>;
}

export interface RescanItemReport {
  outcome: Exclude<RescanOutcome, "queued"> | "already_done";
  scanned: boolean;
  bytes: number;
}

export async function processRescanJob(deps: RescanDeps, job: Pick<Job<RescanJobData>, "data" | "attemptsMade" | "opts">): Promise<RescanItemReport | void> {
  const data = job.data;
  if (data.kind === "move") {
    const upload = await deps.repository.getById(data.uploadId);
    if (upload?.status === "quarantining") await finishMove(deps, upload);
    return;
  }
  return rescanItem(deps, data.runId, data.uploadId, { last: job.attemptsMade + 1 >= (job.opts.attempts ?? 1) });
}

async function rescanItem(deps: RescanDeps, runId: string, uploadId: string, o: { last: boolean }): Promise<RescanItemReport> {
  // Done before (a repeated job, a restarted worker, a page queued again): no second scan.
  if ((await deps.runs.itemOutcome(runId, uploadId)) !== "queued") return { outcome: "already_done", scanned: false, bytes: 0 };
  const done = async (outcome: Exclude<RescanOutcome, "queued">, bytes: number, extra: { signature?: string | null; detail?: string | null } = {}, scanned = true): Promise<RescanItemReport> => {
    if (await deps.runs.finishItem(runId, uploadId, outcome, { bytes, ...extra })) deps.onItem?.(outcome, bytes);
    return { outcome, scanned, bytes };
  };
  const run = await deps.runs.get(runId);
  if (!run || run.status === "cancelled") return done("skipped", 0, { detail: "the run was cancelled" }, false);
  const upload = await deps.repository.getById(uploadId);
  if (!upload) return done("skipped", 0, { detail: "no such upload" }, false);
  if (upload.status === "quarantining") {
    await finishMove(deps, upload);
    return done("quarantined", 0, { signature: upload.signature, detail: "the move to quarantine/ was finished" }, false);
  }
  if (upload.status !== "verified") return done("skipped", 0, { detail: `no longer verified (${upload.status})` }, false);
  const version = await deps.signatures.get();
  if (upload.scannerVersion === version) return done("skipped", 0, { detail: "already cleared by these signatures" }, false);

  const release = await deps.share.acquire();
  let scanned: Scanned;
  let usedVersion: string;
  try {
    // Recorded under the version read before the scan, unchanged until clamd answered
    // (underOneVersion): a scan spanning a RELOAD names neither version truthfully, and
    // the newer one's run would skip an upload recorded as cleared by it.
    ({ value: scanned, version: usedVersion } = await underOneVersion(deps.signatures, () => scanVerified(deps, upload)));
  } catch (err) {
    if (!o.last) throw err;
    deps.logger.error({ uploadId, runId, err: { message: (err as Error).message } }, "rescan kept failing; the upload stays verified under its old clearance");
    return done("failed", 0, { detail: (err as Error).message });
  } finally {
    await release();
  }
  if (scanned.verdict.outcome === "clean") {
    await deps.repository.transition(uploadId, "rescan_pass", "rescan", { scannerVersion: usedVersion });
    return done("clean", scanned.bytes);
  }
  const moved = await quarantineOnRescan(deps, upload, scanned, usedVersion);
  return moved ? done("quarantined", scanned.bytes, { signature: scanned.verdict.signature ?? null, detail: scanned.verdict.detail }) : done("skipped", scanned.bytes, { detail: "the upload changed status during the rescan" });
}

interface Scanned {
  verdict: Verdict;
  bytes: number;
  eTag: string | null;
}

/** The verified object, one version of it (If-Match its ETag), through clamd. */
async function scanVerified(deps: RescanDeps, upload: Upload): Promise<Scanned> {
  const key = verifiedKeyOf(upload);
  const head = await deps.store.head(key);
  if (!head) throw new Error(`the verified object ${key} is missing`);
  let object;
  try {
    object = await deps.store.read(key, head.eTag ? { ifMatch: head.eTag } : {});
  } catch (err) {
    if (err instanceof ObjectChangedError) throw new Error(`the verified object ${key} changed while it was read`);
    throw err;
  }
  if (!object) throw new Error(`the verified object ${key} vanished`);
  const report = await deps.scanner.scan(object.body);
  if (report.outcome === "unscannable") throw new Error(`clamd could not scan ${key}: ${report.reason}`);
  // What is served: the stripped copy when metadata was stripped, else the upload's bytes.
  const expected = upload.metadataStripped ? upload.servedSha256 : upload.sha256;
  if (report.outcome === "infected") {
    return { verdict: quarantine("malware_on_rescan", `clamd found ${report.signature} on a rescan (cleared before by ${upload.scannerVersion ?? "unknown signatures"})`, report.signature), bytes: report.bytes, eTag: head.eTag };
  }
  if (expected && report.sha256 !== expected) {
    return { verdict: quarantine("checksum_mismatch", `the verified object's bytes changed since they were verified: sha256 ${report.sha256}, recorded ${expected}`), bytes: report.bytes, eTag: head.eTag };
  }
  return { verdict: { outcome: "clean" }, bytes: report.bytes, eTag: head.eTag };
}

/** The finding first (no download from here on), then the move. False when the upload was no longer verified. */
async function quarantineOnRescan(deps: RescanDeps, upload: Upload, scanned: Scanned, version: string): Promise<boolean> {
  const v = scanned.verdict as Extract<Verdict, { outcome: "quarantine" }>;
  const t = await deps.repository.transition(upload.id, "rescan_match", "rescan", { verdict: "quarantine", reason: v.reason, reasonDetail: v.detail, signature: v.signature ?? null, scannerVersion: version });
  if (!t.applied) {
    if (t.upload?.status !== "quarantining") return false;
    await finishMove(deps, t.upload);
    return true;
  }
  deps.logger.warn({ uploadId: upload.id, tenantId: upload.tenantId, reason: v.reason, signature: v.signature }, "rescan: a verified upload matches today's signatures; moving it to quarantine");
  await finishMove(deps, t.upload, scanned.eTag);
  return true;
}

/**
 * verified/ -> quarantine/ for an upload in `quarantining`, from wherever a previous attempt
 * stopped: copy unless quarantine/ has it, delete verified/, then the status. The copy is
 * made from the version scanned when that is known (If-Match).
 */
export async function finishMove(deps: Pick<RescanDeps, "repository" | "store" | "logger" | "quarantineRetentionDays" | "onMoveStep">, upload: Upload, eTag?: string | null): Promise<void> {
  const source = verifiedKeyOf(upload);
  const target = objectKey("quarantine", upload.tenantId, upload.id);
  if (!(await deps.store.head(target))) {
    const head = await deps.store.head(source);
    if (head) {
      try {
        await deps.store.copy(source, target, {
          size: head.size,
          // Quarantined bytes are never served as what they claim to be (finalize.ts copy).
          contentType: "application/octet-stream",
          contentDisposition: contentDisposition(upload.filename),
          metadata: scanMetadata(upload),
          ...(eTag ? { ifMatch: eTag } : {}),
        });
      } catch (err) {
        // Replaced since it was scanned: whatever is there now goes to quarantine unread.
        if (!(err instanceof ObjectChangedError)) throw err;
        await deps.store.copy(source, target, { size: head.size, contentType: "application/octet-stream", contentDisposition: contentDisposition(upload.filename), metadata: scanMetadata(upload) });
      }
    } else {
      deps.logger.error({ uploadId: upload.id, source, target }, "rescan: neither the verified nor the quarantined object exists; the upload is quarantined without bytes");
    }
    await deps.onMoveStep?.("copied", upload);
  }
  await deps.store.delete(source);
  await deps.onMoveStep?.("deleted", upload);
  const days = upload.policy?.quarantineRetentionDays ?? deps.quarantineRetentionDays;
  const done = await deps.repository.transition(upload.id, "rescan_quarantine", "rescan", { finalKey: target }, new Date(), {
    // finished_at keeps the first verdict's time (upload-repository.ts FINISHED_ONCE), from
    // which retention counts: a rescan catch of an upload verified long ago would be purged
    // at the reaper's next pass. It is kept at least the retention from now.
    alongside: async (tx, u) => {
      await tx.run(new Statement("update uploads set retention_until = ? where id = ? and (retention_until is null or retention_until < ?)", [Date.now() + days * 86_400_000, u.id, Date.now() + days * 86_400_000]));
    },
  });
  if (done.applied) deps.logger.info({ uploadId: upload.id, finalKey: target }, "rescan: moved to quarantine");
}

function verifiedKeyOf(upload: Upload): string {
  return upload.finalKey ?? objectKey("verified", upload.tenantId, upload.id);
}
