import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl, S3RequestPresigner } from "@aws-sdk/s3-request-presigner";
import type { PutBinding } from "./object-store.ts";
import { EndpointResolver, PLAIN_KEY } from "./endpoint-template.ts";

/**
 * Presigned PUT URLs are the API's hottest path. getSignedUrl runs the SDK's whole
 * middleware stack for every URL (endpoint rule evaluation, serialization, user agent,
 * retry and checksum plumbing): about 280 µs of CPU here, most of the create endpoint's
 * cost. Yet every PUT we sign has the same shape: one bucket, a key we generated, the same
 * few headers. So the endpoint is resolved once, by the SDK itself (one getSignedUrl of a
 * probe key, whose URL gives scheme, host and the bucket's path prefix), and each URL is
 * signed by the SDK's own S3RequestPresigner over a request built from that template:
 * about 45 µs. The result is the same URL getSignedUrl gives, byte for byte (a test
 * compares both at a fixed signing date; the RGW tests prove storage accepts it).
 *
 * Keys outside the plain character set we generate go through getSignedUrl, which owns
 * S3's URI-encoding rules.
 */
export class PutPresigner {
  private readonly s3: S3Client;
  private readonly bucket: string;
  private readonly endpoints: EndpointResolver;
  private readonly presigner: S3RequestPresigner;

  constructor(s3: S3Client, bucket: string, endpoints = new EndpointResolver(s3, bucket)) {
    this.s3 = s3;
    this.bucket = bucket;
    this.endpoints = endpoints;
    // The client's resolved config carries credentials, region, sha256 and the S3 signing
    // rules (unsigned payload, no double URI-encoding) that getSignedUrl would use.
    this.presigner = new S3RequestPresigner({ ...s3.config });
  }

  /** The URL and the headers the client must send with it (every one of them is signed). */
  async presign(key: string, b: PutBinding, signingDate?: Date): Promise<{ url: string; headers: Record<string, string> }> {
    const headers: Record<string, string> = { "Content-Type": b.contentType };
    if (b.sha256Hex) headers["x-amz-checksum-sha256"] = Buffer.from(b.sha256Hex, "hex").toString("base64");
    if (b.md5Base64) headers["Content-MD5"] = b.md5Base64;
    if (!PLAIN_KEY.test(key)) return { url: await this.presignWithSdk(key, b, signingDate), headers };
    const t = await this.endpoints.get();
    const signed = await this.presigner.presign(
      {
        method: "PUT",
        protocol: t.protocol,
        hostname: t.hostname,
        port: t.port,
        path: t.pathPrefix + key,
        headers: { host: t.host, "content-length": String(b.contentLength), ...lowerCased(headers) },
        query: { "x-id": "PutObject" },
      },
      signingOptions(b.expiresIn, signingDate),
    );
    // Sorted by name, as the SDK's formatUrl does, so both paths give the same string.
    const query = Object.entries(signed.query ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
      .join("&");
    return { url: `${t.protocol}//${t.host}${signed.path}?${query}`, headers };
  }

  /** The SDK's own path, for unusual keys. */
  async presignWithSdk(key: string, b: PutBinding, signingDate?: Date): Promise<string> {
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ContentType: b.contentType,
      ContentLength: b.contentLength,
      ...(b.sha256Hex ? { ChecksumSHA256: Buffer.from(b.sha256Hex, "hex").toString("base64") } : {}),
      ...(b.md5Base64 ? { ContentMD5: b.md5Base64 } : {}),
    });
    return getSignedUrl(this.s3, command, signingOptions(b.expiresIn, signingDate));
  }
}

// The presigner leaves Content-Type unsigned unless asked (aws/aws-sdk-js-v3#3497);
// signing it (and the length and MD5) makes storage refuse any other type or size.
const SIGNABLE_HEADERS = new Set(["content-type", "content-length", "content-md5"]);
// x-amz-* headers are hoisted into the query string by default, where S3 does not verify
// the body against them; kept as a header, the checksum is enforced.
const UNHOISTABLE_HEADERS = new Set(["x-amz-checksum-sha256"]);

function signingOptions(expiresIn: number, signingDate?: Date) {
  return { expiresIn, signableHeaders: SIGNABLE_HEADERS, unhoistableHeaders: UNHOISTABLE_HEADERS, ...(signingDate ? { signingDate } : {}) };
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}
