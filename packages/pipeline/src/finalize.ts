import { createHash, randomUUID } from "node:crypto";
import { arrivedSize, contentDisposition, isTerminal, objectKey, type Upload } from "@intake/domain";
import type { UploadFindings } from "@intake/db";
import { ObjectChangedError, type CopyResult } from "@intake/storage";
import type { StageDeps } from "./deps.ts";
import { decideFinalize, needsStagedHash, promotionOutcome, stagingKey, verifiedContentType, type FinalizeDecision, type FinalizeFacts } from "./finalize-decision.ts";
import { UploadGoneError, ensureNextStage, type StageJob } from "./progress.ts";
import { promoteStripped } from "./stripped-promotion.ts";
import { imageToStrip } from "@intake/domain";

/**
 * The finalize stage: the verdict is already written (status `deciding`); this moves the
 * bytes. What to do is decided once (finalize-decision.ts) from the row and a HeadObject;
 * this file only carries it out. A clean upload is copied server-side to a staging key of
 * this run, and on to verified/{tenant}/{id} only once that copy's result proves it holds
 * the checked bytes; anything else goes to quarantine/{tenant}/{id}. The pending
 * object is deleted only after the copy that stays, and the status changes last, so a
 * crash at any point leaves an upload that a retry (or the reaper) finishes the same way.
 */
export async function processFinalize(deps: StageDeps, job: StageJob): Promise<void> {
  const { uploadId } = job.data;
  const upload = await deps.repository.getById(uploadId);
  if (!upload) throw new UploadGoneError(uploadId);
  if (isTerminal(upload.status)) return;
  if (upload.status !== "deciding") return ensureNextStage(deps, upload);

  const started = performance.now();
  const decision = decideFinalize(upload, await gatherFacts(deps, upload));
  const { event, findings } = await carryOut(deps, upload, decision);
  const done = await deps.repository.transition(uploadId, event, "finalize", findings);
  if (done.applied) {
    deps.logger.info({ uploadId, status: done.upload.status, reason: done.upload.reason, finalKey: findings.finalKey ?? null }, "upload finalized");
    deps.metrics?.stageDone("finalize", "staged", performance.now() - started);
    deps.metrics?.uploadFinished(done.upload);
  }
}

async function gatherFacts(deps: StageDeps, upload: Upload): Promise<FinalizeFacts> {
  const pending = await deps.store.head(upload.objectKey);
  if (pending) return { pending };
  // Gone: an earlier attempt may have moved it and died before the status change.
  const [verified, quarantined] = await Promise.all([
    deps.store.head(objectKey("verified", upload.tenantId, upload.id)),
    deps.store.head(objectKey("quarantine", upload.tenantId, upload.id)),
  ]);
  return { pending: null, verified, quarantined };
}

type Outcome = { event: "promote" | "quarantine"; findings: UploadFindings };

async function carryOut(deps: StageDeps, upload: Upload, decision: FinalizeDecision): Promise<Outcome> {
  if ("discard" in decision && decision.discard) await deps.store.delete(decision.discard);
  switch (decision.kind) {
    case "promote": {
      // An upload that asked for its image metadata stripped is promoted only as a stripped copy.
      const format = imageToStrip(upload);
      const outcome = format ? await promoteStripped(deps, upload, decision, format, scanMetadata(upload)) : await promote(deps, upload, decision);
      if (outcome.kind === "promoted") return { event: "promote", findings: outcome.findings };
      const why = outcome.findings.reason === "checksum_mismatch" ? "the copy made for promotion is not the checked version; removing it and quarantining" : "the image could not be stripped of its metadata; quarantining";
      deps.logger.warn({ uploadId: upload.id, reason: outcome.findings.reason, detail: outcome.findings.reasonDetail }, why);
      return carryOut(deps, upload, outcome);
    }
    case "quarantine":
      await copy(deps, upload, upload.objectKey, decision.target, { size: decision.size, findings: decision.findings, clean: false });
      await deps.store.delete(upload.objectKey);
      return { event: "quarantine", findings: { ...decision.findings, finalKey: decision.target } };
    case "settle":
      return { event: decision.event, findings: decision.findings };
    case "vanished":
      deps.logger.error({ uploadId: upload.id, key: upload.objectKey }, "pending object vanished before finalize");
      return { event: "quarantine", findings: decision.findings };
  }
}

/**
 * Stage, confirm, copy on: verified/ receives only a copy already proven to hold the
 * checked bytes. The staging key is this run's alone and no client can write it, so the
 * second copy needs no proof of its own. The pending object goes only after that copy.
 */
async function promote(deps: StageDeps, upload: Upload, decision: Extract<FinalizeDecision, { kind: "promote" }>): Promise<ReturnType<typeof promotionOutcome>> {
  const staging = stagingKey(upload, randomUUID());
  const copied = await promotingCopy(deps, upload, staging, decision.size);
  const proof = copied && needsStagedHash(upload, copied) ? { ...copied, sha256: await stagedSha256(deps, staging) } : copied;
  const outcome = promotionOutcome(upload, { ...decision, staging }, proof);
  if (outcome.kind !== "promoted") return outcome; // its discard removes the staging copy
  try {
    await copy(deps, upload, staging, decision.target, { size: decision.size, findings: {}, clean: true });
  } finally {
    await deps.store.delete(staging);
  }
  await deps.store.delete(upload.objectKey);
  return outcome;
}

/**
 * Promotion by the scan stage, from the staging copy it wrote from the scanned bytes
 * (staged-copy.ts): that copy needs no confirmation, so it goes on to verified/ with the
 * verdict's metadata, then the staging copy and the pending object go, then the status
 * changes. A crash in between leaves `deciding`; the finalize stage then promotes from the
 * pending object as for any upload (and a staging copy left behind is never served).
 */
export async function promoteStaged(deps: StageDeps, upload: Upload, staging: string): Promise<void> {
  const target = objectKey("verified", upload.tenantId, upload.id);
  try {
    await copy(deps, upload, staging, target, { size: arrivedSize(upload), findings: {}, clean: true });
  } finally {
    await deps.store.delete(staging);
  }
  await deps.store.delete(upload.objectKey);
  const done = await deps.repository.transition(upload.id, "promote", "finalize", { finalKey: target });
  if (done.applied) {
    deps.logger.info({ uploadId: upload.id, status: done.upload.status, finalKey: target }, "upload finalized");
    deps.metrics?.uploadFinished(done.upload);
  }
}

/**
 * The SHA-256 of the staging copy, read back. MD5 collisions can be made at will, so a
 * replacement built to collide with the checked bytes carries their ETag past every
 * If-Match and into the copy. The staging key is this run's and no client writes it: what
 * is hashed here is what goes on to verified/.
 */
async function stagedSha256(deps: StageDeps, staging: string): Promise<string> {
  const object = await deps.store.read(staging);
  if (!object) throw new Error(`the staging copy ${staging} vanished before it could be confirmed`);
  const hash = createHash("sha256");
  for await (const chunk of object.body) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * The copy to the run's staging key, conditional on the checked ETag
 * (x-amz-copy-source-if-match): storage that honours it refuses a replaced source (null
 * here); storage that ignores it (Ceph RGW 16) copies whatever is there, which the result
 * then shows.
 */
async function promotingCopy(deps: StageDeps, upload: Upload, staging: string, size: number): Promise<CopyResult | null> {
  try {
    return await copy(deps, upload, upload.objectKey, staging, { size, findings: {}, clean: true, ifMatch: upload.checkedETag! });
  } catch (err) {
    if (err instanceof ObjectChangedError) return null;
    throw err;
  }
}

/**
 * Every copy carries its own Content-Type and Content-Disposition: attachment, so any GET
 * of it (a CDN, a presigned URL made elsewhere) serves it as what was verified and never
 * inline. Quarantined bytes are never served as what they claim to be.
 */
function copy(deps: StageDeps, upload: Upload, source: string, target: string, o: { size: number; findings: UploadFindings; clean: boolean; ifMatch?: string }): Promise<CopyResult> {
  return deps.store.copy(source, target, {
    size: o.size,
    contentType: o.clean ? verifiedContentType(upload) : "application/octet-stream",
    contentDisposition: contentDisposition(upload.filename),
    metadata: scanMetadata({ ...upload, ...o.findings }),
    ...(o.ifMatch ? { ifMatch: o.ifMatch } : {}),
  });
}

/**
 * The scan result carried by the object itself (x-amz-meta-*), so a copy of the bucket
 * still says what was checked. S3 metadata is US-ASCII; anything else is replaced.
 */
export function scanMetadata(u: Pick<Upload, "id" | "tenantId" | "sha256" | "sniffedType" | "scannerVersion" | "verdict" | "reason" | "reasonDetail" | "signature">): Record<string, string> {
  const entries: Record<string, string | null> = {
    "upload-id": u.id,
    tenant: u.tenantId,
    verdict: u.verdict,
    reason: u.reason,
    // Read back by a retried finalize that finds only this copy left (finalize-decision.ts).
    "reason-detail": u.verdict === "quarantine" ? u.reasonDetail : null,
    signature: u.signature,
    sha256: u.sha256,
    "sniffed-type": u.sniffedType,
    scanner: u.scannerVersion,
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entries)) if (v) out[k] = v.replace(/[^\x20-\x7e]/g, "?").slice(0, 256);
  return out;
}
