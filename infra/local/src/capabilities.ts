/**
 * What the local S3 stand-in guarantees, in the shape of @intake/storage's
 * StoreCapabilities (kept structural: this package does not depend on the product's).
 * fauxqs 2.4.1 checks no signature, type, length or checksum and has no ListMultipartUploads or
 * ListParts; the proxy in front of it (local-object-storage.ts) refuses a copy whose
 * x-amz-copy-source-if-match no longer holds. test/conformance checks each of these.
 */
export const LOCAL_STORAGE_CAPABILITIES = Object.freeze({
  verifiesSignatures: false,
  verifiesContentMd5: false,
  verifiesSha256Checksum: false,
  honoursCopyIfMatch: true,
  listsMultipartUploads: false,
  listsParts: false,
});
