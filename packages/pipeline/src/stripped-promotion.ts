import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { contentDisposition, imageToStrip, objectKey, quarantine, type StrippedImageFormat, type Upload, type Verdict } from "@intake/domain";
import type { UploadFindings } from "@intake/db";
import { ObjectChangedError, type ObjectStore } from "@intake/storage";
import type { StageDeps } from "./deps.ts";
import { stagingKey, verifiedContentType, type FinalizeDecision } from "./finalize-decision.ts";
import type { ImageStripper } from "./image-stripping.ts";
import { StagedCopy } from "./staged-copy.ts";

/**
 * Promotion of an upload whose metadata is to be stripped (imageToStrip): verified/ gets a
 * re-encoded copy (image-stripping.ts), never the uploaded bytes. finalize.ts's rules hold:
 * - the verdict is on the row before any of this; a decoder failure overrules it as a
 *   finding (image_undecodable, image_too_large), as a replaced object overrules it;
 * - the stripped image is written to a staging key of this run (under quarantine/, never
 *   served), and only once every byte read has hashed to the scan's sha256 is it copied on
 *   to verified/: the read by the checked ETag plus that hash is the proof the staging copy
 *   gives for the plain path;
 * - the pending object goes only after the copy that stays, and the status changes last
 *   (the caller); a run that dies before the status change leaves a stripped verified/ copy
 *   that says so in its own metadata, which a retry settles on (finalize-decision.ts
 *   strippedCopyFindings), or the pending object, which a retry strips again. libvips
 *   encodes the same input to the same bytes, so a second run writes what the first did.
 */
export type StrippedPromotion = { kind: "promoted"; findings: UploadFindings } | Extract<FinalizeDecision, { kind: "quarantine" }>;

export async function promoteStripped(deps: StageDeps, upload: Upload, decision: Extract<FinalizeDecision, { kind: "promote" }>, format: StrippedImageFormat, metadata: Record<string, string>): Promise<StrippedPromotion> {
  const refuse = (verdict: Verdict): StrippedPromotion => ({ kind: "quarantine", target: objectKey("quarantine", upload.tenantId, upload.id), size: decision.size, findings: overrule(verdict) });
  const images = requireStripper(deps);
  if (decision.size > images.maxBytes) return refuse(tooLarge(decision.size, images.maxBytes));
  let object;
  try {
    object = await deps.store.read(upload.objectKey, { ifMatch: upload.checkedETag! });
  } catch (err) {
    if (err instanceof ObjectChangedError) return refuse(replaced());
    throw err;
  }
  if (!object) throw new Error(`object ${upload.objectKey} vanished before it could be stripped`);
  const stripped = await stripToStaging(deps.store, images, upload, object.body, object.size, format);
  if (stripped.kind === "refused") return refuse(stripped.verdict);
  await copyStripped(deps.store, upload, stripped, decision.target, metadata);
  await deps.store.delete(upload.objectKey);
  return { kind: "promoted", findings: { finalKey: decision.target, ...strippedFindings(stripped) } };
}

export type StagedStrip = { kind: "stripped"; staging: string; servedSha256: string; servedSize: number } | { kind: "refused"; verdict: Verdict };

/**
 * Strips `body` into a staging copy of its own. The bytes read must be the checked ones
 * (the upload's sha256): anything else is a replacement, refused whatever the decoder said.
 * A failure that is not the image's own (storage) removes the staging copy and throws.
 */
export async function stripToStaging(store: ObjectStore, images: ImageStripper, upload: Pick<Upload, "tenantId" | "id" | "sha256">, body: Readable, size: number, format: StrippedImageFormat): Promise<StagedStrip> {
  const staged = await StagedCopy.open(store, stagingKey(upload, randomUUID()));
  let outcome;
  try {
    outcome = await images.strip(body, size, format, staged);
  } catch (err) {
    await staged.discard().catch(() => undefined);
    throw err;
  }
  const checked = outcome.inputSha256 === null || outcome.inputSha256 === upload.sha256;
  if (outcome.kind === "stripped" && checked && staged.complete) {
    let found: Verdict | null;
    try {
      found = await scanServed(store, images, staged.key, outcome);
    } catch (err) {
      await staged.discard().catch(() => undefined);
      throw err;
    }
    if (!found) return { kind: "stripped", staging: staged.key, servedSha256: outcome.servedSha256, servedSize: outcome.servedSize };
    await staged.discard();
    return { kind: "refused", verdict: found };
  }
  await staged.discard();
  if (!checked) return { kind: "refused", verdict: replaced() };
  if (outcome.kind === "refused") return outcome;
  throw new Error("the stripped image's staging copy did not complete");
}

/**
 * clamd's finding in the stripped copy, or null. The copy is what is served, and its bytes
 * are libvips' work, not the upload's: clamd only ever saw the upload. A PNG's pixels are
 * written back as they decode (no row filter; incompressible rows as stored deflate
 * blocks), so bytes an upload hid from clamd behind a row filter or its compression can
 * appear verbatim in the copy (seen: EICAR in the pixels of a Sub-filtered PNG that clamd
 * passed). So the copy is scanned before it may be promoted; a failed scan throws (the
 * caller retries, nothing is promoted), and a worker without a scanner strips nothing.
 */
async function scanServed(store: ObjectStore, images: ImageStripper, staging: string, stripped: { servedSha256: string; servedSize: number }): Promise<Verdict | null> {
  if (!images.servedScanner) throw new Error("this worker's image stripper has no scanner: a stripped copy clamd has not scanned is never promoted");
  const copy = await store.read(staging);
  if (!copy) throw new Error(`the stripped copy ${staging} vanished before it was scanned`);
  const report = await images.servedScanner.scan(copy.body);
  if (report.outcome === "infected") return quarantine("malware", `clamd found ${report.signature} in the stripped copy (the image as re-encoded for serving)`, report.signature);
  if (report.outcome === "unscannable") return quarantine("unscannable", `the stripped copy: ${report.reason}`);
  if (report.bytes !== stripped.servedSize || report.sha256 !== stripped.servedSha256) throw new Error(`the stripped copy ${staging} read back is not the one written (${report.bytes} bytes, sha256 ${report.sha256})`);
  return null;
}

/** staging -> `target` with the verified type, attachment, and metadata that says it was stripped; then the staging copy goes. */
export async function copyStripped(store: ObjectStore, upload: Pick<Upload, "declaredType" | "filename">, stripped: Extract<StagedStrip, { kind: "stripped" }>, target: string, metadata: Record<string, string>): Promise<void> {
  try {
    await store.copy(stripped.staging, target, {
      size: stripped.servedSize,
      contentType: verifiedContentType(upload),
      contentDisposition: contentDisposition(upload.filename),
      // Read back by a retried finalize that finds only this copy (finalize-decision.ts).
      metadata: { ...metadata, "metadata-stripped": "true", "served-sha256": stripped.servedSha256 },
    });
  } finally {
    await store.delete(stripped.staging);
  }
}

export function strippedFindings(stripped: Pick<Extract<StagedStrip, { kind: "stripped" }>, "servedSha256" | "servedSize">): UploadFindings {
  return { metadataStripped: true, servedSha256: stripped.servedSha256, servedSize: stripped.servedSize };
}

/** Fail closed: a worker without the image library wired in never promotes the original instead. */
export function requireStripper(deps: Pick<StageDeps, "images">): ImageStripper {
  if (!deps.images) throw new Error("this worker has no image stripper: an upload that asked for its metadata stripped cannot be promoted here");
  return deps.images;
}

function tooLarge(size: number, max: number): Verdict {
  return quarantine("image_too_large", `the image has ${size} bytes, over the ${max} bytes metadata stripping allows (IMAGE_MAX_BYTES)`);
}

function replaced(): Verdict {
  return quarantine("checksum_mismatch", "the pending object was replaced while it was being promoted: the stored bytes are not the bytes that were checked");
}

function overrule(verdict: Verdict): UploadFindings {
  if (verdict.outcome !== "quarantine") throw new Error("only a finding overrules a clean verdict");
  return { verdict: "quarantine", reason: verdict.reason, reasonDetail: verdict.detail, signature: null };
}

/** A clean upload that is promoted only as a stripped copy: the paths that promote from bytes they hold leave it to finalize. */
export function promotesStripped(upload: Pick<Upload, "verdict" | "stripImageMetadata" | "sniffedType">): boolean {
  return upload.verdict === "clean" && imageToStrip(upload) !== null;
}

export type StrippedCopy = Extract<StagedStrip, { kind: "stripped" }>;

/**
 * For a release's recheck (recheck.ts), which holds the clean bytes in memory or in a
 * staging copy of them: a stripped staging copy to promote instead, a finding (the source's
 * staging copy then removed), or null when the upload did not ask for stripping.
 */
export async function stripReleased(deps: Pick<StageDeps, "store" | "images">, upload: Pick<Upload, "tenantId" | "id" | "sha256" | "verdict" | "stripImageMetadata" | "sniffedType">, source: { bytes: Buffer } | { staged: { key: string; discard(): Promise<void> } }): Promise<StagedStrip | null> {
  const format = imageToStrip(upload);
  if (!format) return null;
  const images = requireStripper(deps);
  if ("bytes" in source) return stripToStaging(deps.store, images, upload, Readable.from([source.bytes]), source.bytes.length, format);
  const object = await deps.store.read(source.staged.key);
  if (!object) throw new Error(`the recheck's staging copy ${source.staged.key} vanished before it could be stripped`);
  const stripped = await stripToStaging(deps.store, images, upload, object.body, object.size, format);
  // The scanned bytes' copy is never promoted now: only the stripped one may be.
  await source.staged.discard();
  return stripped;
}
