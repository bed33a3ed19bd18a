import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { PutPresigner } from "./put-presigner.ts";
import { PostPresigner, type PostBinding, type PresignedPost } from "./post-presigner.ts";
import { DirectRequests, discard, errorCode, type DirectResponse } from "./direct-requests.ts";
import { EndpointResolver, PLAIN_KEY } from "./endpoint-template.ts";
import { AWS_S3_CAPABILITIES, type StoreCapabilities } from "./capabilities.ts";
import { codeOf, ObjectChangedError, statusOf, StorageUnsupportedError, translateStorageError } from "./errors.ts";
import { DependencyUnavailableError } from "@intake/domain";
import type { CopyOptions, CopyResult, ListOptions, ObjectListing, MultipartUploadInfo, ObjectHead, ObjectRead, ObjectStore, PartBinding, PresignedRequest, PutBinding, PutOptions, ReadOptions, StoredPart } from "./object-store.ts";

export interface S3Settings {
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  bucket: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

// Content-MD5 is signed only when asked (as Content-Type is, aws/aws-sdk-js-v3#3497), and an
// x-amz-* header left to the default is hoisted into the query, where S3 does not check the
// body against it (smithy-lang/smithy-typescript#1421): kept a header, it is enforced.
const PART_SIGNABLE_HEADERS = new Set(["content-length", "content-md5"]);
const PART_UNHOISTABLE_HEADERS = new Set(["x-amz-checksum-sha256"]);

/** Above this a CopyObject is refused by S3; the copy goes part by part instead. */
const MAX_SINGLE_COPY = 5 * 1024 * 1024 * 1024;
const COPY_PART_SIZE = 512 * 1024 * 1024;

export function createS3Client(s: Omit<S3Settings, "bucket">): S3Client {
  return new S3Client({
    region: s.region,
    endpoint: s.endpoint,
    forcePathStyle: s.forcePathStyle,
    credentials: s.credentials,
    // Since SDK 3.729 the default (WHEN_SUPPORTED) puts x-amz-checksum-crc32 of an *empty*
    // body into presigned PUT/UploadPart URLs, which real uploads then fail (R2, MinIO, RGW).
    // aws/aws-sdk-js-v3#6806. Checksums we want are bound explicitly instead.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  readonly capabilities: StoreCapabilities;
  private readonly s3: S3Client;

  private readonly putPresigner: PutPresigner;
  private readonly postPresigner: PostPresigner;
  private readonly direct: DirectRequests;

  /** `capabilities`: what the storage behind this endpoint guarantees (AWS S3 by default). */
  constructor(s3: S3Client, bucket: string, capabilities: StoreCapabilities = AWS_S3_CAPABILITIES) {
    this.s3 = s3;
    this.bucket = bucket;
    this.capabilities = capabilities;
    const endpoints = new EndpointResolver(s3, bucket);
    this.putPresigner = new PutPresigner(s3, bucket, endpoints);
    this.postPresigner = new PostPresigner(s3, bucket);
    this.direct = new DirectRequests(s3, endpoints);
  }

  async presignPut(key: string, b: PutBinding): Promise<PresignedRequest> {
    const { url, headers } = await this.putPresigner.presign(key, b);
    return { method: "PUT", url, headers, expiresAt: new Date(Date.now() + b.expiresIn * 1000) };
  }

  async presignPost(key: string, b: PostBinding): Promise<PresignedPost> {
    return this.postPresigner.presign(key, b);
  }

  async presignGet(key: string, o: { contentType: string; contentDisposition: string; expiresIn: number }): Promise<PresignedRequest> {
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ResponseContentDisposition: o.contentDisposition,
      ResponseContentType: o.contentType,
    });
    const url = await getSignedUrl(this.s3, command, { expiresIn: o.expiresIn });
    return { method: "GET", url, headers: {}, expiresAt: new Date(Date.now() + o.expiresIn * 1000) };
  }

  async createMultipart(key: string, contentType: string, opts: { sha256Parts?: boolean } = {}): Promise<string> {
    // SHA-256 has only the COMPOSITE type in S3 (FULL_OBJECT is for the CRCs).
    const checksum = opts.sha256Parts && this.capabilities.verifiesPartSha256 ? ({ ChecksumAlgorithm: "SHA256", ChecksumType: "COMPOSITE" } as const) : {};
    try {
      const out = await this.s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: contentType, ...checksum }));
      if (!out.UploadId) throw new Error("CreateMultipartUpload returned no UploadId");
      return out.UploadId;
    } catch (err) {
      throw translateStorageError(err, "CreateMultipartUpload");
    }
  }

  async presignPart(key: string, uploadId: string, partNumber: number, o: PartBinding): Promise<PresignedRequest> {
    const headers: Record<string, string> = {};
    if (o.md5Base64) headers["Content-MD5"] = o.md5Base64;
    if (o.sha256Hex) headers["x-amz-checksum-sha256"] = Buffer.from(o.sha256Hex, "hex").toString("base64");
    const command = new UploadPartCommand({
      Bucket: this.bucket,
      Key: key,
      UploadId: uploadId,
      PartNumber: partNumber,
      // No length for a size-unknown upload's part: the client picks its part size.
      ...(o.contentLength !== undefined ? { ContentLength: o.contentLength } : {}),
      ...(o.md5Base64 ? { ContentMD5: o.md5Base64 } : {}),
      ...(o.sha256Hex ? { ChecksumSHA256: headers["x-amz-checksum-sha256"] } : {}),
    });
    // Part PUTs carry no Content-Type (Uppy and browsers send none); the length and any
    // declared checksum are bound, so storage that checks them refuses other bytes.
    const url = await getSignedUrl(this.s3, command, { expiresIn: o.expiresIn, signableHeaders: PART_SIGNABLE_HEADERS, unhoistableHeaders: PART_UNHOISTABLE_HEADERS });
    return { method: "PUT", url, headers, expiresAt: new Date(Date.now() + o.expiresIn * 1000) };
  }

  async listParts(key: string, uploadId: string): Promise<StoredPart[]> {
    const parts: StoredPart[] = [];
    let marker: string | undefined;
    try {
      do {
        const out = await this.s3.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }));
        for (const p of out.Parts ?? []) {
          if (p.PartNumber !== undefined && p.ETag) {
            const sha256 = p.ChecksumSHA256 ? { sha256Hex: Buffer.from(p.ChecksumSHA256, "base64").toString("hex") } : {};
            parts.push({ partNumber: p.PartNumber, size: p.Size ?? 0, eTag: p.ETag, ...sha256 });
          }
        }
        marker = out.IsTruncated ? out.NextPartNumberMarker : undefined;
      } while (marker);
    } catch (err) {
      // Real S3 answers NoSuchUpload for an unknown upload id. NoSuchKey means the store
      // served GET ?uploadId= as a plain GetObject: it has no ListParts (fauxqs 2.4.1).
      if (codeOf(err) === "NoSuchKey") throw new StorageUnsupportedError("ListParts");
      throw translateStorageError(err, "ListParts");
    }
    return parts;
  }

  async completeMultipart(key: string, uploadId: string, parts: { partNumber: number; eTag: string; sha256Hex?: string }[]): Promise<void> {
    try {
      await this.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: {
            Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.eTag, ...(p.sha256Hex ? { ChecksumSHA256: Buffer.from(p.sha256Hex, "hex").toString("base64") } : {}) })),
          },
        }),
      );
    } catch (err) {
      throw translateStorageError(err, "CompleteMultipartUpload");
    }
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    if (PLAIN_KEY.test(key)) {
      const res = await this.sendDirect("PUT", key, {}, "UploadPart", body, { partNumber: String(partNumber), uploadId });
      if (res.status !== 200) throw await refused(res, "UploadPart");
      await discard(res);
      const eTag = res.headers.etag;
      if (!eTag) throw new DependencyUnavailableError("storage", `storage answered UploadPart ${partNumber} of ${key} without an ETag`);
      return eTag;
    }
    try {
      const out = await this.s3.send(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }));
      if (!out.ETag) throw new Error(`UploadPart ${partNumber} returned no ETag`);
      return out.ETag;
    } catch (err) {
      throw translateStorageError(err, "UploadPart");
    }
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      // Already completed or aborted: the goal (no upload in progress) holds.
      if (codeOf(err) === "NoSuchUpload" || statusOf(err) === 404) return;
      throw translateStorageError(err, "AbortMultipartUpload");
    }
  }

  async listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    const out: MultipartUploadInfo[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      do {
        const page = await this.s3.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        // A real ListMultipartUploadsResult always names its Bucket. fauxqs 2.4.1 answers
        // GET ?uploads with a ListBucketResult instead, which parses to an empty page: an
        // empty list there would be a lie, so it is reported as unsupported.
        if (page.Bucket === undefined) throw new StorageUnsupportedError("ListMultipartUploads");
        for (const u of page.Uploads ?? []) {
          if (u.Key && u.UploadId) out.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated ?? null });
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      if (err instanceof StorageUnsupportedError) throw err;
      throw translateStorageError(err, "ListMultipartUploads");
    }
    return out;
  }

  async listObjects(prefix: string, o: ListOptions = {}): Promise<ObjectListing> {
    const maxKeys = Math.min(1000, Math.max(1, Math.floor(o.maxKeys ?? 1000)));
    let page;
    try {
      page = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          MaxKeys: maxKeys,
          ...(o.continuationToken ? { ContinuationToken: o.continuationToken } : o.startAfter ? { StartAfter: o.startAfter } : {}),
        }),
      );
    } catch (err) {
      throw translateStorageError(err, "ListObjectsV2");
    }
    // A truncated page without a token would end a walk early, and silently.
    if (page.IsTruncated && !page.NextContinuationToken) throw new DependencyUnavailableError("storage", `ListObjectsV2 under ${prefix} answered a truncated page without a continuation token`);
    const objects = (page.Contents ?? []).filter((c) => c.Key !== undefined).map((c) => ({ key: c.Key!, size: c.Size ?? 0, lastModified: c.LastModified ?? null }));
    return { objects, next: page.IsTruncated ? page.NextContinuationToken! : null };
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      // The stored checksum only where storage verified it (capabilities): elsewhere a header
      // echoed back would be the client's claim, not storage's word.
      const verifies = this.capabilities.verifiesSha256Checksum;
      const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ...(verifies ? { ChecksumMode: "ENABLED" as const } : {}) }));
      const sha256 = verifies && out.ChecksumSHA256 && out.ChecksumType !== "COMPOSITE" ? Buffer.from(out.ChecksumSHA256, "base64").toString("hex") : null;
      return {
        size: out.ContentLength ?? 0,
        eTag: out.ETag?.replace(/"/g, "") ?? null,
        contentType: out.ContentType ?? null,
        metadata: out.Metadata ?? {},
        lastModified: out.LastModified ?? null,
        ...(sha256 && sha256.length === 64 ? { verifiedSha256: sha256 } : {}),
      };
    } catch (err) {
      if (statusOf(err) === 404 || codeOf(err) === "NotFound" || codeOf(err) === "NoSuchKey") return null;
      throw translateStorageError(err, "HeadObject");
    }
  }

  async read(key: string, o: ReadOptions = {}): Promise<ObjectRead | null> {
    if (PLAIN_KEY.test(key)) return this.readDirect(key, o);
    let out;
    try {
      out = await this.s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: o.range ? `bytes=${o.range.start}-${o.range.end}` : undefined,
          IfMatch: o.ifMatch ? `"${o.ifMatch}"` : undefined,
        }),
      );
    } catch (err) {
      if (statusOf(err) === 404 || codeOf(err) === "NoSuchKey") return null;
      // A range starting at 0 is unsatisfiable only for an empty object: S3 answers 416.
      if (o.range?.start === 0 && (statusOf(err) === 416 || codeOf(err) === "InvalidRange")) {
        const head = await this.head(key);
        if (!head) return null;
        return this.matched(key, o, { body: Readable.from([]), size: head.size, eTag: head.eTag });
      }
      throw translateStorageError(err, "GetObject");
    }
    const body = out.Body as Readable;
    const size = out.ContentRange ? Number(/\/(\d+)$/.exec(out.ContentRange)?.[1]) : out.ContentLength;
    if (size === undefined || !Number.isSafeInteger(size)) {
      body.destroy();
      throw new DependencyUnavailableError("storage", `storage answered GetObject for ${key} without a usable size (${out.ContentRange ?? out.ContentLength})`);
    }
    return this.matched(key, o, { body, size, eTag: out.ETag?.replace(/"/g, "") ?? null });
  }

  /** read() without the SDK's middleware (direct-requests.ts): the same answers, for keys we generated. */
  private async readDirect(key: string, o: ReadOptions): Promise<ObjectRead | null> {
    const headers: Record<string, string> = {};
    if (o.range) headers.range = `bytes=${o.range.start}-${o.range.end}`;
    if (o.ifMatch) headers["if-match"] = `"${o.ifMatch}"`;
    const res = await this.sendDirect("GET", key, headers, "GetObject");
    if (res.status === 404) {
      await discard(res);
      return null;
    }
    // A range starting at 0 is unsatisfiable only for an empty object: S3 answers 416.
    if (res.status === 416 && o.range?.start === 0) {
      await discard(res);
      const head = await this.head(key);
      if (!head) return null;
      return this.matched(key, o, { body: Readable.from([]), size: head.size, eTag: head.eTag });
    }
    if (res.status !== 200 && res.status !== 206) throw await refused(res, "GetObject");
    const range = res.headers["content-range"];
    const size = range ? Number(/\/(\d+)$/.exec(range)?.[1]) : Number(res.headers["content-length"]);
    if (!Number.isSafeInteger(size)) {
      res.body.destroy();
      throw new DependencyUnavailableError("storage", `storage answered GetObject for ${key} without a usable size (${range ?? res.headers["content-length"]})`);
    }
    return this.matched(key, o, { body: res.body, size, eTag: unquote(res.headers.etag) });
  }

  private async sendDirect(method: "GET" | "PUT" | "DELETE", key: string, headers: Record<string, string>, operation: string, body?: Buffer, query?: Record<string, string>, payloadSha256?: string): Promise<DirectResponse> {
    try {
      return await this.direct.send(method, key, headers, body, query, payloadSha256);
    } catch (err) {
      throw translateStorageError(err, operation);
    }
  }

  /**
   * If-Match holds whatever the storage does with the header: one that ignores it (or a
   * proxy that drops it) serves another version, which is refused here instead of read.
   */
  private matched(key: string, o: ReadOptions, object: ObjectRead): ObjectRead {
    if (o.ifMatch && object.eTag !== o.ifMatch) {
      object.body.destroy();
      throw new ObjectChangedError(`GetObject of ${key}`);
    }
    return object;
  }

  async copy(sourceKey: string, targetKey: string, o: CopyOptions): Promise<CopyResult> {
    const source = `${this.bucket}/${encodeKey(sourceKey)}`;
    if (o.size > MAX_SINGLE_COPY) return this.copyInParts(source, targetKey, o);
    let out;
    try {
      out = await this.s3.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: targetKey,
          CopySource: source,
          CopySourceIfMatch: o.ifMatch,
          // REPLACE: the copy carries our type, disposition and metadata, not the client's.
          MetadataDirective: "REPLACE",
          ContentType: o.contentType,
          ContentDisposition: o.contentDisposition,
          Metadata: o.metadata,
          // Storage that supports it computes the new object's SHA-256 (returned in the
          // result); the others ignore the header (seen on fauxqs 2.4.1 and Ceph RGW 16).
          ChecksumAlgorithm: "SHA256",
        }),
      );
    } catch (err) {
      throw translateStorageError(err, "CopyObject");
    }
    const r = out.CopyObjectResult;
    // A composite checksum is a checksum of part checksums, not of the bytes.
    const fullObject = r?.ChecksumType === undefined || r.ChecksumType === "FULL_OBJECT";
    const eTag = unquote(r?.ETag) ?? (await this.head(targetKey))?.eTag ?? null;
    return { eTag, sha256: r?.ChecksumSHA256 && fullObject ? Buffer.from(r.ChecksumSHA256, "base64").toString("hex") : null };
  }

  /**
   * Above 5 GiB (S3's CopyObject limit) the copy goes part by part; the result is a
   * multipart object whose ETag names its parts, so callers comparing ETags see a new one.
   */
  private async copyInParts(source: string, targetKey: string, o: CopyOptions): Promise<CopyResult> {
    const uploadId = await this.createMultipartWithMetadata(targetKey, o);
    try {
      const parts: { partNumber: number; eTag: string }[] = [];
      for (let start = 0, n = 1; start < o.size; start += COPY_PART_SIZE, n++) {
        const end = Math.min(start + COPY_PART_SIZE, o.size) - 1;
        const out = await this.s3.send(
          // Every part carries the condition: a source replaced halfway fails the copy.
          new UploadPartCopyCommand({ Bucket: this.bucket, Key: targetKey, UploadId: uploadId, PartNumber: n, CopySource: source, CopySourceRange: `bytes=${start}-${end}`, CopySourceIfMatch: o.ifMatch }),
        );
        parts.push({ partNumber: n, eTag: out.CopyPartResult?.ETag ?? "" });
      }
      await this.completeMultipart(targetKey, uploadId, parts);
    } catch (err) {
      await this.abortMultipart(targetKey, uploadId).catch(() => undefined);
      throw err instanceof Error && "kind" in err ? err : translateStorageError(err, "UploadPartCopy");
    }
    return { eTag: (await this.head(targetKey))?.eTag ?? null, sha256: null };
  }

  private async createMultipartWithMetadata(key: string, o: CopyOptions): Promise<string> {
    try {
      const out = await this.s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: o.contentType, ContentDisposition: o.contentDisposition, Metadata: o.metadata }));
      return out.UploadId!;
    } catch (err) {
      throw translateStorageError(err, "CreateMultipartUpload");
    }
  }

  async put(key: string, body: Buffer, o: PutOptions): Promise<{ eTag: string | null }> {
    if (!/^[0-9a-f]{64}$/.test(o.sha256Hex)) throw new Error(`put ${key}: sha256Hex must be 64 lower-case hex digits`);
    if (PLAIN_KEY.test(key)) {
      const headers: Record<string, string> = { "content-type": o.contentType };
      if (o.contentDisposition) headers["content-disposition"] = o.contentDisposition;
      for (const [k, v] of Object.entries(o.metadata)) headers[`x-amz-meta-${k.toLowerCase()}`] = v;
      const res = await this.sendDirect("PUT", key, headers, "PutObject", body, {}, o.sha256Hex);
      if (res.status !== 200) throw await refused(res, "PutObject");
      await discard(res);
      return { eTag: unquote(res.headers.etag) };
    }
    const command = new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length, ContentType: o.contentType, ContentDisposition: o.contentDisposition, Metadata: o.metadata });
    // The SigV4 signer takes a payload hash already in the headers instead of hashing the
    // body itself (@smithy/signature-v4 getPayloadHash); set before signing ("build" step).
    command.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) request.headers["x-amz-content-sha256"] = o.sha256Hex;
        return next(args);
      },
      { step: "build", name: "intakePayloadHash" },
    );
    try {
      const out = await this.s3.send(command);
      return { eTag: unquote(out.ETag) };
    } catch (err) {
      throw translateStorageError(err, "PutObject");
    }
  }

  async delete(key: string): Promise<void> {
    if (PLAIN_KEY.test(key)) {
      const res = await this.sendDirect("DELETE", key, {}, "DeleteObject");
      if (res.status !== 204 && res.status !== 200 && res.status !== 404) throw await refused(res, "DeleteObject");
      await discard(res);
      return;
    }
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw translateStorageError(err, "DeleteObject");
    }
  }

  async ping(): Promise<void> {
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw translateStorageError(err, "HeadBucket");
    }
  }
}

/** An error response as the SDK would have thrown it, translated like the SDK's errors. */
async function refused(res: DirectResponse, operation: string): Promise<Error> {
  return translateStorageError({ name: await errorCode(res), $metadata: { httpStatusCode: res.status } }, operation);
}

/** S3 quotes ETags; some stores (Ceph RGW in CopyObjectResult) do not. */
function unquote(eTag: string | undefined): string | null {
  return eTag ? eTag.replace(/"/g, "") : null;
}

/** CopySource is "bucket/key" with the key URL-encoded, '/' kept. */
function encodeKey(key: string): string {
  return key.split("/").map(encodeURIComponent).join("/");
}
