/**
 * What an S3-compatible storage really does, declared rather than discovered by a failing
 * call in production. test/conformance/object-store.test.ts runs the same contract on
 * every backend and checks each declaration against the backend's behaviour: a store
 * that claims a guarantee it does not give fails there.
 */
export interface StoreCapabilities {
  /**
   * Storage verifies presigned signatures, so a PUT with another Content-Type or length
   * than the URL was signed for is refused (403). Without it the binding is advisory and
   * the pipeline's own size and type checks are all there is.
   */
  verifiesSignatures: boolean;
  /** A PUT whose body does not match its signed Content-MD5 is refused (400 BadDigest). */
  verifiesContentMd5: boolean;
  /** A PUT whose body does not match its x-amz-checksum-sha256 header is refused (400 BadDigest). */
  verifiesSha256Checksum: boolean;
  /**
   * CreateMultipartUpload with ChecksumAlgorithm SHA256 is honoured: every part PUT must then
   * carry x-amz-checksum-sha256, which storage verifies (400 BadDigest), and
   * CompleteMultipartUpload must name each part's ChecksumSHA256. The checksum type is
   * COMPOSITE: S3 has no FULL_OBJECT type for SHA-256 (only for the CRCs), so the whole
   * object's sha256 is the pipeline's to compare. Such storage also refuses a part's
   * x-amz-checksum-sha256 on an upload created without the algorithm ("Checksum Type
   * mismatch"), so part sha256s are bound only on uploads that declared one.
   */
  verifiesPartSha256: boolean;
  /** CopyObject with x-amz-copy-source-if-match copies only while the source has that ETag (else 412). */
  honoursCopyIfMatch: boolean;
  /** ListMultipartUploads works (else listMultipartUploads throws StorageUnsupportedError). */
  listsMultipartUploads: boolean;
  /** ListParts works (else listParts throws StorageUnsupportedError). */
  listsParts: boolean;
}

/** AWS S3 as documented: every guarantee above. */
export const AWS_S3_CAPABILITIES: StoreCapabilities = Object.freeze({
  verifiesSignatures: true,
  verifiesContentMd5: true,
  verifiesSha256Checksum: true,
  verifiesPartSha256: true,
  honoursCopyIfMatch: true,
  listsMultipartUploads: true,
  listsParts: true,
});

/**
 * Ceph RGW 16 (Debian radosgw), seen here: verifies SigV4 for PUT and POST and Content-MD5,
 * ignores x-amz-checksum-sha256, implements ListMultipartUploads and ListParts, and copies
 * whatever the source holds whatever x-amz-copy-source-if-match says.
 */
export const CEPH_RGW_CAPABILITIES: StoreCapabilities = Object.freeze({
  verifiesSignatures: true,
  verifiesContentMd5: true,
  verifiesSha256Checksum: false,
  verifiesPartSha256: false,
  honoursCopyIfMatch: false,
  listsMultipartUploads: true,
  listsParts: true,
});

/**
 * The project's local stand-in (infra/local: fauxqs 2.4.1 behind a proxy), seen here: it
 * checks no signature, type, length or checksum and has no ListMultipartUploads or
 * ListParts; its proxy refuses a copy whose x-amz-copy-source-if-match no longer holds.
 */
export const LOCAL_STAND_IN_CAPABILITIES: StoreCapabilities = Object.freeze({
  verifiesSignatures: false,
  verifiesContentMd5: false,
  verifiesSha256Checksum: false,
  verifiesPartSha256: false,
  honoursCopyIfMatch: true,
  listsMultipartUploads: false,
  listsParts: false,
});

/** The storages the configuration can name (STORAGE_KIND), each with what it guarantees. */
export const STORE_KINDS = {
  aws: AWS_S3_CAPABILITIES,
  "ceph-rgw": CEPH_RGW_CAPABILITIES,
  "intake-local": LOCAL_STAND_IN_CAPABILITIES,
} as const satisfies Record<string, StoreCapabilities>;
export type StoreKind = keyof typeof STORE_KINDS;
