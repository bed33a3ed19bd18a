import type { UploadStatus } from "./upload-state.ts";
import type { QuarantineReason } from "./verdict.ts";
import type { MultipartPlan } from "./multipart.ts";
import type { PolicyInForce } from "./tenant-policy.ts";

/** An upload as the system knows it: one row, one object key, one life cycle. */
export interface Upload {
  id: string;
  tenantId: string;
  status: UploadStatus;
  filename: string;
  declaredType: string;
  /** The exact size the client declared; null when the size is learned on arrival (upload-size.ts). */
  declaredSize: number | null;
  /** The most bytes the upload may hold: its declared size, or the limit it was created with. */
  sizeLimit: number;
  declaredSha256: string | null;
  declaredMd5: string | null;
  metadata: Record<string, string>;
  objectKey: string; // the pending key the client uploads to
  finalKey: string | null; // verified/ or quarantine/ key once decided
  /** For a size-unknown upload, a bound rather than a plan (upload-size.ts multipartBound). */
  multipart: (MultipartPlan & { storageUploadId: string }) | null;
  urlExpiresAt: Date;
  /**
   * The upload's policy asks for image metadata to be stripped, as recorded at create: the
   * pipeline acts on it through imageToStrip (image-metadata.ts), never on today's config.
   */
  stripImageMetadata: boolean;
  /**
   * The tenant's policy in force when the upload was declared (tenant-policy.ts): what the
   * pipeline judges it by (allowed types, maximum size, archives, stripping, retention),
   * whatever the policy says by then. Null for uploads declared before policies existed,
   * which are judged by the deployment's configuration.
   */
  policy: PolicyInForce | null;
  // what the pipeline found
  storedSize: number | null;
  sniffedType: string | null;
  /** ETag of the object version inspect checked; scan and finalize act on that version only. */
  checkedETag: string | null;
  sha256: string | null;
  /**
   * Hex MD5 of the bytes the scan read, recorded only when the checked ETag is not itself
   * an MD5 (a multipart upload's "-N" ETag): some stores give a copy of such an object the
   * whole object's MD5 as its ETag, and finalize confirms the copy against this then.
   */
  scannedMd5: string | null;
  /**
   * The verified copy is the upload re-encoded without its EXIF/XMP/IPTC metadata: what is
   * served then has its own SHA-256 and size (sha256 and storedSize stay the upload's).
   * False, and both null, when the verified copy is the uploaded bytes themselves.
   */
  metadataStripped: boolean;
  servedSha256: string | null;
  servedSize: number | null;
  verdict: "clean" | "quarantine" | null;
  reason: QuarantineReason | null;
  reasonDetail: string | null;
  signature: string | null; // malware signature name
  scannerVersion: string | null; // clamd engine / signature database versions
  /**
   * Digest of what the scan's verdict depended on besides the bytes and the signatures (the
   * policy's checked terms, clamd's limits: verdict-cache.ts scanContextText); null when the
   * verdict cache was off for its scan, which then records no cache entry.
   */
  scanContext: string | null;
  /** The upload whose clamd verdict this one reused (verdict-cache.ts); null: clamd scanned these bytes. */
  verdictFromCache: string | null;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
  uploadedAt: Date | null;
  inspectedAt: Date | null;
  scannedAt: Date | null;
  decidedAt: Date | null;
  finishedAt: Date | null; // verified / quarantined / expired / aborted
}
