import { canonicalType, isTerminal, objectKey, type Upload } from "@intake/domain";
import type { UploadFindings } from "@intake/db";
import { ObjectChangedError } from "@intake/storage";
import type { StageDeps } from "./deps.ts";
import { UploadGoneError, ensureNextStage, type StageJob } from "./progress.ts";

/**
 * The finalize stage: the verdict is already written (status `deciding`); this moves the
 * bytes. A clean upload is copied server-side to verified/{tenant}/{id} with the scan
 * result in its metadata, anything else to quarantine/{tenant}/{id}. The pending object is
 * deleted only after the copy succeeded, and the status changes last, so a crash at any
 * point leaves an upload that a retry (or the reaper) finishes the same way.
 */
export async function processFinalize(deps: StageDeps, job: StageJob): Promise<void> {
  const { uploadId } = job.data;
  const upload = await deps.repository.getById(uploadId);
  if (!upload) throw new UploadGoneError(uploadId);
  if (isTerminal(upload.status)) return;
  if (upload.status !== "deciding") return ensureNextStage(deps, upload);

  let promote = upload.verdict === "clean";
  let override: UploadFindings = {};
  const pending = await deps.store.head(upload.objectKey);
  // The ETag of the version inspect and scan checked (on the row, so a job re-created by
  // the reaper knows it too). Without it nothing says which bytes were checked.
  const checked = upload.checkedETag;
  if (pending && promote && !checked) {
    promote = false;
    override = quarantineFindings("scan_error", "storage gave no ETag for the checked bytes: nothing binds the object to what was checked");
  } else if (pending && promote && pending.eTag !== checked) {
    // The client overwrote the object after it was scanned: what would be promoted is not
    // what was checked. Fail closed.
    promote = false;
    override = quarantineFindings("checksum_mismatch", "the pending object was replaced after the scan: the stored bytes are not the bytes that were checked");
  }
  let target = objectKey(promote ? "verified" : "quarantine", upload.tenantId, upload.id);

  if (pending) {
    const copyTo = (key: string, clean: boolean, ifMatch?: string) =>
      deps.store.copy(upload.objectKey, key, {
        size: pending.size,
        // Quarantined bytes are never served as what they claim to be.
        contentType: clean ? (canonicalType(upload.declaredType) ?? "application/octet-stream") : "application/octet-stream",
        metadata: scanMetadata({ ...upload, ...override }),
        ...(ifMatch ? { ifMatch } : {}),
      });
    if (promote) {
      try {
        // The head above and the copy are two requests: a client still holding a valid URL
        // could overwrite the object between them. Storage itself checks the ETag of the
        // checked bytes at copy time (CopySourceIfMatch), which closes that gap.
        await copyTo(target, true, checked!);
      } catch (err) {
        if (!(err instanceof ObjectChangedError)) throw err;
        promote = false;
        override = quarantineFindings("checksum_mismatch", "the pending object was replaced while it was being promoted: the stored bytes are not the bytes that were checked");
        target = objectKey("quarantine", upload.tenantId, upload.id);
        await copyTo(target, false);
      }
    } else {
      await copyTo(target, false);
    }
    await deps.store.delete(upload.objectKey);
  } else if (!(await deps.store.head(target))) {
    // Neither the pending object nor the copy exists: the object vanished before it could
    // be moved. Nothing can be promoted; record that instead of waiting forever.
    deps.logger.error({ uploadId, key: upload.objectKey }, "pending object vanished before finalize");
    if (promote) override = quarantineFindings("scan_error", "the pending object vanished before it could be promoted");
    promote = false;
    target = "";
  }
  // (else: a previous attempt copied and deleted, then died before the status change.)

  const findings: UploadFindings = target ? { ...override, finalKey: target } : override;
  const done = await deps.repository.transition(uploadId, promote ? "promote" : "quarantine", "finalize", findings);
  if (done.applied) {
    deps.logger.info({ uploadId, status: done.upload.status, reason: done.upload.reason, finalKey: target || null }, "upload finalized");
  }
}

function quarantineFindings(reason: "checksum_mismatch" | "scan_error", detail: string): UploadFindings {
  return { verdict: "quarantine", reason, reasonDetail: detail, signature: null };
}

/**
 * The scan result carried by the object itself (x-amz-meta-*), so a copy of the bucket
 * still says what was checked. S3 metadata is US-ASCII; anything else is replaced.
 */
export function scanMetadata(u: Pick<Upload, "id" | "tenantId" | "sha256" | "sniffedType" | "scannerVersion" | "verdict" | "reason" | "signature">): Record<string, string> {
  const entries: Record<string, string | null> = {
    "upload-id": u.id,
    tenant: u.tenantId,
    verdict: u.verdict,
    reason: u.reason,
    signature: u.signature,
    sha256: u.sha256,
    "sniffed-type": u.sniffedType,
    scanner: u.scannerVersion,
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entries)) if (v) out[k] = v.replace(/[^\x20-\x7e]/g, "?").slice(0, 256);
  return out;
}
