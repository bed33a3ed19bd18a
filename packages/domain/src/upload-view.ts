import type { Upload } from "./upload.ts";

/**
 * What a client sees of an upload. An explicit allowlist of fields rather than the row:
 * object keys, the storage's multipart UploadId and the idempotency fingerprint are ours,
 * and nothing here may ever carry a URL or a key. The tenant API answers with it and the
 * verdict webhooks carry it as their `data`, so both show a tenant the same fields.
 */
export interface UploadView {
  id: string;
  status: Upload["status"];
  filename: string;
  contentType: string;
  /**
   * The size in bytes: the declared one, or for an upload whose size is learned on arrival
   * (the Uppy routes without metadata[size]) the size recorded when its object arrived, and
   * null until then.
   */
  size: number | null;
  /** The most bytes the upload may hold: its declared size, or the limit it was created with. */
  sizeLimit: number;
  /**
   * The tenant's policy it was declared and is judged under (its version and the digest of
   * its terms; the terms themselves are on the compliance pages). Null for uploads declared
   * before tenant policies existed.
   */
  policy: { version: number; digest: string } | null;
  sha256: string | null;
  md5: string | null;
  metadata: Record<string, string>;
  multipart: { partSize: number; partCount: number } | null;
  urlExpiresAt: string;
  createdAt: string;
  updatedAt: string;
  uploadedAt: string | null;
  finishedAt: string | null;
  result: {
    storedSize: number | null;
    detectedType: string | null;
    sha256: string | null;
    verdict: "clean" | "quarantine" | null;
    reason: string | null;
    reasonDetail: string | null;
    signature: string | null;
    /** The verified copy had its image metadata (EXIF, XMP, IPTC) removed: it is not the uploaded bytes. */
    metadataStripped: boolean;
    /** SHA-256 and size of what the download serves: the stripped copy's, else the upload's own. */
    servedSha256: string | null;
    servedSize: number | null;
  };
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function uploadView(u: Upload): UploadView {
  return {
    id: u.id,
    status: u.status,
    filename: u.filename,
    contentType: u.declaredType,
    size: u.declaredSize ?? u.storedSize,
    sizeLimit: u.sizeLimit,
    policy: u.policy ? { version: u.policy.version, digest: u.policy.digest } : null,
    sha256: u.declaredSha256,
    md5: u.declaredMd5,
    metadata: u.metadata,
    multipart: u.multipart ? { partSize: u.multipart.partSize, partCount: u.multipart.partCount } : null,
    urlExpiresAt: u.urlExpiresAt.toISOString(),
    createdAt: u.createdAt.toISOString(),
    updatedAt: u.updatedAt.toISOString(),
    uploadedAt: iso(u.uploadedAt),
    finishedAt: iso(u.finishedAt),
    result: {
      storedSize: u.storedSize,
      detectedType: u.sniffedType,
      sha256: u.sha256,
      verdict: u.verdict,
      reason: u.reason,
      reasonDetail: u.reasonDetail,
      signature: u.signature,
      metadataStripped: u.metadataStripped,
      servedSha256: u.metadataStripped ? u.servedSha256 : u.sha256,
      servedSize: u.metadataStripped ? u.servedSize : u.storedSize,
    },
  };
}

/**
 * What the application's backend sees of an upload session it minted (never the token):
 * the API answers with it, the SDK types its answers with it.
 */
export interface UploadSessionView {
  id: string;
  expiresAt: string;
  revokedAt: string | null;
  maxFiles: number;
  maxBytes: number | null;
  allowedTypes: string[];
  metadata: Record<string, string>;
  filesUsed: number;
  bytesUsed: number;
}
