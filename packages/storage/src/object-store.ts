import type { Readable } from "node:stream";
import type { StoreCapabilities } from "./capabilities.ts";
import type { PostBinding, PresignedPost } from "./post-presigner.ts";

/**
 * What the product needs from object storage, in its own words. The S3 adapter implements
 * it for AWS and S3-compatible stores (fauxqs in development, Ceph RGW in tests).
 */
export interface PresignedRequest {
  method: "PUT" | "GET";
  url: string;
  /** Headers the client must send exactly as given: they are part of the signature. */
  headers: Record<string, string>;
  expiresAt: Date;
}

export interface ObjectHead {
  size: number;
  eTag: string | null;
  contentType: string | null;
  metadata: Record<string, string>;
  lastModified: Date | null;
  /**
   * Hex SHA-256 of the whole object as storage verified it on upload (a single PUT's
   * x-amz-checksum-sha256, checksum type FULL_OBJECT), asked for only where
   * capabilities.verifiesSha256Checksum; absent elsewhere and for a COMPOSITE (multipart) one.
   */
  verifiedSha256?: string;
}

export interface StoredPart {
  partNumber: number;
  size: number;
  eTag: string;
  /** Hex SHA-256 storage verified for the part (uploads created with sha256 part checksums, where storage keeps them). */
  sha256Hex?: string;
}

export interface MultipartUploadInfo {
  key: string;
  uploadId: string;
  initiated: Date | null;
}

/** One object of a listing (ListObjectsV2): what storage says without reading it. */
export interface ListedObject {
  key: string;
  size: number;
  /**
   * When storage last wrote it. For an object completed from a multipart upload, AWS S3
   * gives the upload's initiation time, not the completion's: an age read from it can only
   * be longer than the object has existed as one.
   */
  lastModified: Date | null;
}

/** One page of a listing, in key order. */
export interface ObjectListing {
  objects: ListedObject[];
  /** Pass as `continuationToken` for the next page; null when this page was the last. */
  next: string | null;
}

export interface ListOptions {
  /** Keys strictly after this one (ListObjectsV2 StartAfter): where an earlier walk stopped. */
  startAfter?: string;
  /** The `next` of the page before (ListObjectsV2 ContinuationToken); wins over startAfter. */
  continuationToken?: string;
  /** At most this many keys (1-1000; storage may return fewer). Default 1000. */
  maxKeys?: number;
}

export interface PutBinding {
  contentType: string;
  contentLength: number;
  sha256Hex?: string;
  md5Base64?: string;
  expiresIn: number; // seconds
}

export interface PartBinding {
  /**
   * The part's exact length, signed. Absent only for an upload whose size is learned on
   * arrival: the client picks its part size, and storage takes any part up to 5 GiB.
   */
  contentLength?: number;
  expiresIn: number; // seconds
  /** Hex SHA-256 of the part's bytes. */
  sha256Hex?: string;
  /** Base64 MD5 of the part's bytes, as Content-MD5 carries it. */
  md5Base64?: string;
}

/** An object being read: its bytes and what storage says about the whole object. */
export interface ObjectRead {
  body: Readable;
  /** The whole object's size, for a ranged read too. */
  size: number;
  eTag: string | null;
}

export interface ReadOptions {
  /** Inclusive byte range; may run past the end (storage stops at the last byte). */
  range?: { start: number; end: number };
  /**
   * Read only while the object still has this ETag, else ObjectChangedError (If-Match;
   * the store checks the ETag it was served too, for storage that ignores the header).
   */
  ifMatch?: string;
}

export interface CopyOptions {
  size: number;
  /** The copy's own Content-Type (MetadataDirective REPLACE): what any GET of it serves. */
  contentType: string;
  /** The copy's own Content-Disposition, so a GET from anywhere (a CDN, another presigner) serves it so too. */
  contentDisposition?: string;
  metadata: Record<string, string>;
  /**
   * Asks storage to copy only while the source has this ETag. Not every storage honours
   * it (Ceph RGW 16 ignores it): callers that must know what was copied check the result.
   */
  ifMatch?: string;
}

export interface PutOptions {
  /** The object's Content-Type: what any GET of it serves. */
  contentType: string;
  contentDisposition?: string;
  metadata: Record<string, string>;
  /**
   * Hex SHA-256 of the body, which the caller already has (the scan hashed these bytes).
   * It is signed as the payload hash (x-amz-content-sha256), so storage that checks
   * signatures (AWS S3, Ceph RGW) refuses the PUT unless it received exactly these bytes,
   * and the store does not hash them a second time.
   */
  sha256Hex: string;
}

/** What storage says about the object a copy created. */
export interface CopyResult {
  /** The new object's ETag, unquoted; null when storage named none. */
  eTag: string | null;
  /**
   * Hex SHA-256 of the whole new object, where storage computed one on request
   * (x-amz-checksum-algorithm SHA256: AWS S3 does; fauxqs 2.4.1 and Ceph RGW 16 return none).
   */
  sha256: string | null;
}

export interface ObjectStore {
  readonly bucket: string;
  /** What this storage guarantees (signature checks, conditional copy, listings). */
  readonly capabilities: StoreCapabilities;
  presignPut(key: string, binding: PutBinding): Promise<PresignedRequest>;
  /** A presigned POST (browser form upload) binding key, type and exact size: post-presigner.ts. */
  presignPost(key: string, binding: PostBinding): Promise<PresignedPost>;
  presignGet(key: string, opts: { contentType: string; contentDisposition: string; expiresIn: number }): Promise<PresignedRequest>;
  /**
   * `sha256Parts`: every part will carry its x-amz-checksum-sha256 (ChecksumAlgorithm SHA256,
   * COMPOSITE), for storage with capabilities.verifiesPartSha256; ignored elsewhere.
   */
  createMultipart(key: string, contentType: string, opts?: { sha256Parts?: boolean }): Promise<string>;
  /**
   * A part's URL. Checksums given are signed in (Content-MD5; x-amz-checksum-sha256 kept a
   * header, not hoisted into the query) and come back in `headers`, which the client must
   * send exactly; no Content-Type is ever required (part PUTs from browsers send none).
   */
  presignPart(key: string, uploadId: string, partNumber: number, opts: PartBinding): Promise<PresignedRequest>;
  /** Parts the storage holds; throws StorageUnsupportedError where ListParts is missing. */
  listParts(key: string, uploadId: string): Promise<StoredPart[]>;
  /** Sends one part of a multipart upload from memory (the server's own upload, not a client's); its ETag as storage quoted it. */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string>;
  /** `sha256Hex` of each part is required where the upload was created with sha256Parts. */
  completeMultipart(key: string, uploadId: string, parts: { partNumber: number; eTag: string; sha256Hex?: string }[]): Promise<void>;
  abortMultipart(key: string, uploadId: string): Promise<void>;
  /** In-progress multipart uploads; throws StorageUnsupportedError where not implemented. */
  listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]>;
  /**
   * One page of the objects whose keys start with `prefix` (ListObjectsV2), in UTF-8 binary
   * key order. A caller bounds its work by the pages it asks for and goes on from `next`
   * (or, in a later walk, from the last key it saw, as `startAfter`). Names only: no bytes
   * are read, and IAM's s3:ListBucket authorises it.
   */
  listObjects(prefix: string, opts?: ListOptions): Promise<ObjectListing>;
  head(key: string): Promise<ObjectHead | null>;
  /**
   * The object's bytes with its size and ETag, from one GET: callers need no HeadObject
   * first. null when there is no such object.
   */
  read(key: string, opts?: ReadOptions): Promise<ObjectRead | null>;
  /**
   * Server-side copy (multipart copy above 5 GiB); no bytes pass through this process.
   * With `ifMatch`, storage that honours x-amz-copy-source-if-match copies only while the
   * source still has that ETag and the copy fails with ObjectChangedError otherwise; storage
   * that ignores it copies whatever is there, which the result's ETag/sha256 then show.
   */
  copy(sourceKey: string, targetKey: string, opts: CopyOptions): Promise<CopyResult>;
  /** Writes bytes held in memory as a whole object (one PutObject); its ETag, unquoted. */
  put(key: string, body: Buffer, opts: PutOptions): Promise<{ eTag: string | null }>;
  delete(key: string): Promise<void>;
  ping(): Promise<void>;
}
