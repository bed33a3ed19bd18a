import { InvalidRequestError } from "./errors.ts";

/** S3's multipart rules: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
export const MAX_PARTS = 10_000;
/** A single PUT cannot exceed 5 GiB: above that, multipart is the only way in. */
export const MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024;

export interface MultipartPlan {
  partSize: number;
  partCount: number;
}

/**
 * Part size for an object: the preferred size when it fits in 10,000 parts, otherwise the
 * smallest MiB-aligned size that does.
 */
export function planMultipart(size: number, preferredPartSize: number): MultipartPlan {
  let partSize = Math.max(MIN_PART_SIZE, preferredPartSize);
  if (Math.ceil(size / partSize) > MAX_PARTS) {
    const mib = 1024 * 1024;
    partSize = Math.ceil(size / MAX_PARTS / mib) * mib;
  }
  if (partSize > MAX_PART_SIZE) {
    throw new InvalidRequestError("too_many_parts", `an object of ${size} bytes cannot be split into ${MAX_PARTS} parts of at most 5 GiB`);
  }
  return { partSize, partCount: Math.max(1, Math.ceil(size / partSize)) };
}

/** The byte length of part `n` (1-based) under a plan. */
export function partLength(size: number, plan: MultipartPlan, partNumber: number): number {
  if (partNumber < plan.partCount) return plan.partSize;
  return size - plan.partSize * (plan.partCount - 1);
}

/**
 * The part numbers of one request for part URLs. At most `maxPerRequest` of them (each is
 * a signature computed and a URL handed out), each once, each within the plan: a repeat or
 * an out-of-range number is a client bug, refused rather than silently dropped.
 */
export function validatePartNumbers(raw: unknown, plan: MultipartPlan, maxPerRequest: number): number[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new InvalidRequestError("invalid_part_numbers", "partNumbers must be a non-empty array of part numbers");
  }
  if (raw.length > maxPerRequest) {
    throw new InvalidRequestError("too_many_part_numbers", `at most ${maxPerRequest} part URLs can be requested at once; ${raw.length} were asked for`, { maxPerRequest, requested: raw.length });
  }
  const seen = new Set<number>();
  for (const n of raw) {
    if (!Number.isInteger(n) || n < 1 || n > plan.partCount) {
      throw new InvalidRequestError("invalid_part_numbers", `part numbers must be integers from 1 to ${plan.partCount}`, { partNumber: n });
    }
    if (seen.has(n)) throw new InvalidRequestError("duplicate_part_number", `part ${n} is listed twice`, { partNumber: n });
    seen.add(n);
  }
  return [...seen].sort((a, b) => a - b);
}
