import { InvalidRequestError } from "./errors.ts";
import { quoteForMessage } from "./filename.ts";
import { validatePartNumbers, type MultipartPlan } from "./multipart.ts";

/**
 * One part a client asks a URL for, with the checksums it computed for that part's bytes.
 * Each declared checksum is signed into the part's URL, so storage that verifies it refuses
 * other bytes: Content-MD5 (AWS S3 and Ceph RGW check it) and x-amz-checksum-sha256 (AWS S3
 * checks it; Ceph RGW 16 ignores it, but the header is still signed and must be sent).
 */
export interface PartRequest {
  partNumber: number;
  /** Base64 of the part's 16-byte MD5 digest, as Content-MD5 carries it. */
  md5?: string;
  /** Lower-case hex of the part's SHA-256 (sent as base64 in x-amz-checksum-sha256). */
  sha256?: string;
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const MD5_B64 = /^[A-Za-z0-9+/]{22}==$/;
const PART_FIELDS = ["partNumber", "md5", "sha256"];

/**
 * The parts of one request for part URLs, in either shape: `partNumbers: [1, 2]` (no
 * checksums, the original shape) or `parts: [{partNumber, md5?, sha256?}]`. Exactly one of
 * the two; the same limits either way (at most `maxPerRequest`, each once, within the plan).
 */
export function validatePartRequests(input: { partNumbers?: unknown; parts?: unknown }, plan: MultipartPlan, maxPerRequest: number): PartRequest[] {
  if (input.parts !== undefined && input.partNumbers !== undefined) {
    throw new InvalidRequestError("invalid_part_numbers", "send either partNumbers or parts, not both");
  }
  if (input.parts === undefined) return validatePartNumbers(input.partNumbers, plan, maxPerRequest).map((partNumber) => ({ partNumber }));
  const raw = input.parts;
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new InvalidRequestError("invalid_part_numbers", "parts must be a non-empty array of {partNumber, md5?, sha256?}");
  }
  if (raw.length > maxPerRequest) {
    throw new InvalidRequestError("too_many_part_numbers", `at most ${maxPerRequest} part URLs can be requested at once; ${raw.length} were asked for`, { maxPerRequest, requested: raw.length });
  }
  const checksums = new Map<number, PartRequest>();
  for (const p of raw) {
    if (typeof p !== "object" || p === null || Array.isArray(p)) throw new InvalidRequestError("invalid_part_numbers", "each part must be an object {partNumber, md5?, sha256?}");
    const unknown = Object.keys(p).find((k) => !PART_FIELDS.includes(k));
    if (unknown) throw new InvalidRequestError("unknown_field", `unknown field ${quoteForMessage(unknown, 100)} in parts[]`, { field: unknown.slice(0, 100) });
    const { partNumber, md5, sha256 } = p as { partNumber?: unknown; md5?: unknown; sha256?: unknown };
    if (!Number.isInteger(partNumber) || (partNumber as number) < 1 || (partNumber as number) > plan.partCount) {
      throw new InvalidRequestError("invalid_part_numbers", `part numbers must be integers from 1 to ${plan.partCount}`, { partNumber });
    }
    const n = partNumber as number;
    if (checksums.has(n)) throw new InvalidRequestError("duplicate_part_number", `part ${n} is listed twice`, { partNumber: n });
    if (md5 !== undefined && (typeof md5 !== "string" || !MD5_B64.test(md5))) {
      throw new InvalidRequestError("invalid_checksum", "md5 of a part must be the base64 encoding of its 16-byte MD5 digest (as in Content-MD5)", { partNumber: n });
    }
    if (sha256 !== undefined && (typeof sha256 !== "string" || !SHA256_HEX.test(sha256))) {
      throw new InvalidRequestError("invalid_checksum", "sha256 of a part must be 64 hexadecimal characters", { partNumber: n });
    }
    checksums.set(n, { partNumber: n, ...(md5 !== undefined ? { md5: md5 as string } : {}), ...(sha256 !== undefined ? { sha256: (sha256 as string).toLowerCase() } : {}) });
  }
  return [...checksums.values()].sort((a, b) => a.partNumber - b.partNumber);
}
