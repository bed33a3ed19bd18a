import { fileTypeFromBuffer } from "file-type";
import { archiveVerdict, checkRulesFor, quarantine, transitionFor, type Upload, type Verdict } from "@intake/domain";
import type { UploadFindings } from "@intake/db";
import type { ObjectStore } from "@intake/storage";
import { finalVerdict, sizeVerdict, typeVerdict } from "./decisions.ts";
import type { InspectionPolicy, StageDeps } from "./deps.ts";
import { UploadGoneError, ensureNextStage, isLastAttempt, recordVerdict, type StageJob } from "./progress.ts";

/**
 * The inspect stage: real size against the declaration and the maximum, then magic bytes
 * against the declared type and the allowlist. It reads at most SNIFF_LIMIT bytes, with one
 * ranged GET whose Content-Range also gives the whole object's size: file-type samples
 * ~4 KiB for most formats, but names ZIP-based Office formats only after walking the first
 * ZIP entries (sindresorhus/file-type#799), which fit in 64 KiB for real documents. A
 * container it cannot name within that budget is reported as a plain ZIP and fails the
 * type check.
 */
export const SNIFF_LIMIT = 64 * 1024;

export type InspectDeps = StageDeps & { policy: InspectionPolicy };

export async function processInspect(deps: InspectDeps, job: StageJob): Promise<void> {
  const { uploadId } = job.data;
  const upload = await deps.repository.getById(uploadId);
  if (!upload) throw new UploadGoneError(uploadId);
  if (!transitionFor("inspect").from.includes(upload.status)) {
    // Already past this stage (a duplicate or retried job): only make sure it moves on.
    return ensureNextStage(deps, upload);
  }
  try {
    const started = await deps.repository.transition(uploadId, "inspect", "inspect");
    if (!started.applied) return started.upload ? ensureNextStage(deps, started.upload) : undefined;
    if (job.attemptsMade > 0) await deps.repository.countAttempt(uploadId);
    const t0 = performance.now();

    // One ranged GET answers both questions: the whole object's size (Content-Range) and
    // the first SNIFF_LIMIT bytes. A HeadObject first would be a second round trip.
    const object = await readHead(deps.store, upload.objectKey);
    // The object was seen (S3 event or HeadObject on complete): missing now is an anomaly
    // worth a retry; on the last attempt it ends in quarantine like any failed check.
    if (!object) throw new Error(`object ${upload.objectKey} is missing`);
    // The version checked here is the only one scan may read and finalize may copy.
    const { verdict, findings } = await inspectObject(upload, object, deps.policy);
    if (verdict) {
      await recordVerdict(deps, uploadId, "inspect", finalVerdict(verdict), findings);
      deps.metrics?.stageDone("inspect", "staged", performance.now() - t0);
      return;
    }
    const scanning = await deps.repository.transition(uploadId, "scan", "inspect", findings);
    deps.metrics?.stageDone("inspect", "staged", performance.now() - t0);
    if (scanning.upload) await ensureNextStage(deps, scanning.upload);
  } catch (err) {
    if (err instanceof UploadGoneError || !isLastAttempt(job)) throw err;
    deps.logger.error({ uploadId, err }, "inspection kept failing; quarantining (fail closed)");
    await recordVerdict(deps, uploadId, "inspect", quarantine("scan_error", `inspection failed on every attempt: ${(err as Error).message}`), {});
  }
}

/**
 * What inspection finds from an object's size and its first bytes: the real size against
 * the declaration and the maximum, then the magic bytes against the declared type and the
 * allowlist. Shared by this stage and the one-pass check. `verdict` is null when both pass.
 */
export async function inspectObject(upload: Pick<Upload, "declaredSize" | "sizeLimit" | "storedSize" | "declaredType" | "policy">, object: HeadRead, policy: InspectionPolicy): Promise<{ verdict: Verdict | null; findings: UploadFindings }> {
  // The policy recorded on the upload at create, not today's: an admin's change since then
  // neither refuses nor admits what was declared before it (`policy` is the deployment's,
  // for uploads recorded before policies were).
  const rules = checkRulesFor(upload, policy);
  const findings: UploadFindings = { storedSize: object.size, checkedETag: object.eTag };
  const badSize = sizeVerdict(object.size, upload, rules.maxSize);
  if (badSize) return { verdict: badSize, findings };
  const sniffed = (await fileTypeFromBuffer(object.bytes.subarray(0, SNIFF_LIMIT)))?.mime;
  findings.sniffedType = sniffed ?? null;
  return { verdict: archiveVerdict(sniffed, rules) ?? typeVerdict(upload.declaredType, sniffed, rules.allowedTypes), findings };
}

export interface HeadRead {
  bytes: Buffer;
  /** The whole object's size, from the ranged GET's Content-Range. */
  size: number;
  eTag: string | null;
}

/**
 * The first `limit` bytes of the object (all of it when smaller), its size and ETag, from
 * one ranged GET. The ranged body is read to its end rather than cut off: cutting it would
 * close the keep-alive connection, and the next request would pay for a new one.
 */
export async function readHead(store: ObjectStore, key: string, limit = SNIFF_LIMIT): Promise<HeadRead | null> {
  const object = await store.read(key, { range: { start: 0, end: limit - 1 } });
  if (!object) return null;
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of object.body as AsyncIterable<Buffer>) {
    // Storage that ignores Range would send everything: stop at the limit (leaving the
    // loop destroys the body and so closes the socket, the right price for that).
    if (length >= limit) break;
    chunks.push(chunk);
    length += chunk.length;
  }
  return { bytes: Buffer.concat(chunks, length).subarray(0, limit), size: object.size, eTag: object.eTag };
}
