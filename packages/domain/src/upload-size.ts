import { MAX_PARTS, MAX_SINGLE_PUT, MIN_PART_SIZE, type MultipartPlan } from "./multipart.ts";
import type { Upload } from "./upload.ts";

/**
 * An upload's size is declared or learned on arrival.
 *
 * Declared (POST /v1/uploads, and the Uppy routes when the page sends metadata[size]): the
 * exact size, bound into every URL (a PUT's signed Content-Length, a POST policy's
 * content-length-range [size, size], each part URL's Content-Length), claimed from the
 * quotas and the session's budget, and checked by the pipeline.
 *
 * Learned on arrival (the Uppy routes without a size: Uppy sends none of its own): the upload
 * is created with a size limit instead, the least of the per-file maximum, the session's
 * remaining byte budget and, for a form POST, S3's 5 GiB. The limit is what the URLs bind
 * (the POST policy's content-length-range [1, limit]; part URLs bind no length, Uppy picks
 * its part size, but only as many parts as the limit needs at S3's 5 MiB minimum are signed)
 * and what the quotas and the session reserve. When the object arrives its real size is
 * recorded, the reservation settled to it in the same unit of work, and from then on the
 * upload is held to that recorded size exactly, as to a declared one.
 */

/** The size the upload is held to: the declared one, else the one recorded on arrival; null before that. */
export function recordedSize(u: Pick<Upload, "declaredSize" | "storedSize">): number | null {
  return u.declaredSize ?? u.storedSize;
}

/** Whether the upload's size is learned on arrival (it was created with a limit, not a size). */
export function sizeLearnedOnArrival(u: Pick<Upload, "declaredSize">): boolean {
  return u.declaredSize === null;
}

/** How a size-unknown upload's bytes travel: one form POST, or parts. */
export type Transfer = "form" | "multipart";

/** The most a size-unknown upload may hold before the session's budget narrows it. */
export function sizeLimitFor(maxSize: number, transfer: Transfer): number {
  // A single POST, like a single PUT, cannot exceed S3's 5 GiB.
  return transfer === "form" ? Math.min(maxSize, MAX_SINGLE_PUT) : maxSize;
}

/**
 * The multipart bound of a size-unknown upload: every part but the last at least S3's 5 MiB
 * (partSize is that minimum, not a size the client must use), and at most as many parts as
 * the limit needs at that minimum (partCount), never above S3's 10,000. More parts could only
 * carry more bytes than the limit allows.
 */
export function multipartBound(sizeLimit: number): MultipartPlan {
  return { partSize: MIN_PART_SIZE, partCount: Math.min(MAX_PARTS, Math.max(1, Math.ceil(sizeLimit / MIN_PART_SIZE))) };
}

/**
 * The object's size for code that runs only after arrival (copies, rechecks): the size last
 * recorded from the object, else the declared one. Arrival always records a size, so a
 * missing one is a bug to surface, never a size to guess.
 */
export function arrivedSize(u: Pick<Upload, "id" | "declaredSize" | "storedSize">): number {
  const size = u.storedSize ?? u.declaredSize;
  if (size === null) throw new Error(`upload ${u.id} has no recorded size`);
  return size;
}
