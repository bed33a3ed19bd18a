import { Readable } from "node:stream";
import { UnrecoverableError } from "bullmq";
import { fileTypeFromStream } from "file-type";
import { quarantine } from "@intake/domain";
import type { UploadFindings } from "@intake/db";
import type { ObjectStore } from "@intake/storage";
import { finalVerdict, sizeVerdict, typeVerdict } from "./decisions.ts";
import type { InspectionPolicy, StageDeps } from "./deps.ts";
import { ensureNextStage, isLastAttempt, recordVerdict, type StageJob } from "./progress.ts";

/**
 * The inspect stage: real size against the declaration and the maximum, then magic bytes
 * against the declared type and the allowlist. It reads at most SNIFF_LIMIT bytes, with a
 * ranged GET so storage never sends more: file-type samples ~4 KiB for most formats, but
 * names ZIP-based Office formats only after walking the first ZIP entries
 * (sindresorhus/file-type#799), which fit in 64 KiB for real documents. A container it
 * cannot name within that budget is reported as a plain ZIP and fails the type check.
 */
export const SNIFF_LIMIT = 64 * 1024;

export type InspectDeps = StageDeps & { policy: InspectionPolicy };

export async function processInspect(deps: InspectDeps, job: StageJob): Promise<void> {
  const { uploadId } = job.data;
  const upload = await deps.repository.getById(uploadId);
  if (!upload) throw new UnrecoverableError(`upload ${uploadId} does not exist`);
  if (upload.status !== "uploaded" && upload.status !== "inspecting") {
    // Already past this stage (a duplicate or retried job): only make sure it moves on.
    return ensureNextStage(deps, upload);
  }
  try {
    const started = await deps.repository.transition(uploadId, "inspect", "inspect");
    if (!started.applied) return started.upload ? ensureNextStage(deps, started.upload) : undefined;
    if (job.attemptsMade > 0) await deps.repository.countAttempt(uploadId);

    const head = await deps.store.head(upload.objectKey);
    // The object was seen (S3 event or HeadObject on complete): missing now is an anomaly
    // worth a retry; on the last attempt it ends in quarantine like any failed check.
    if (!head) throw new Error(`object ${upload.objectKey} is missing`);
    const findings: UploadFindings = { storedSize: head.size };
    let verdict = sizeVerdict(head.size, upload.declaredSize, deps.policy.maxSize);
    if (!verdict) {
      const sniffed = await sniffType(deps.store, upload.objectKey, head.size);
      findings.sniffedType = sniffed ?? null;
      verdict = typeVerdict(upload.declaredType, sniffed, deps.policy.allowedTypes);
    }
    if (verdict) {
      await recordVerdict(deps, uploadId, "inspect", finalVerdict(verdict), findings);
      return;
    }
    const scanning = await deps.repository.transition(uploadId, "scan", "inspect", findings);
    if (scanning.upload) await ensureNextStage(deps, scanning.upload, head.eTag);
  } catch (err) {
    if (err instanceof UnrecoverableError || !isLastAttempt(job)) throw err;
    deps.logger.error({ uploadId, err }, "inspection kept failing; quarantining (fail closed)");
    await recordVerdict(deps, uploadId, "inspect", quarantine("scan_error", `inspection failed on every attempt: ${(err as Error).message}`), {});
  }
}

/** file-type's answer over at most SNIFF_LIMIT bytes of the object; undefined when it found no signature. */
export async function sniffType(store: ObjectStore, key: string, size: number): Promise<string | undefined> {
  const body = await store.read(key, { start: 0, end: Math.min(size, SNIFF_LIMIT) - 1 });
  try {
    const result = await fileTypeFromStream(Readable.toWeb(body) as ReadableStream<Uint8Array>);
    return result?.mime;
  } finally {
    // file-type stops reading once it has decided; drop the rest of the ranged response.
    body.destroy();
  }
}
