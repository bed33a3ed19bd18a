import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

/**
 * Where requests for one bucket go, resolved once by the SDK itself: the URL of one
 * presigned probe gives scheme, host and the bucket's path prefix (path style or virtual
 * host). Signing a request over this template with the SDK's own signer gives what the
 * SDK's whole middleware stack would (endpoint rules, serialization) at a fraction of its
 * cost; the presigned PUTs of the API (put-presigner.ts) and the workers' hot requests
 * (direct-requests.ts) both use it.
 */
export interface EndpointTemplate {
  protocol: string;
  hostname: string;
  port: number | undefined;
  host: string;
  pathPrefix: string; // "/bucket/" (path style) or "/" (virtual-hosted)
}

/**
 * Keys of the plain character set we generate: the template's path prefix plus such a key
 * is already the URI S3 signs. Other keys go through the SDK, which owns S3's URI encoding.
 */
export const PLAIN_KEY = /^[A-Za-z0-9/_.-]+$/;
const PROBE_KEY = "intake-endpoint-probe";

export class EndpointResolver {
  private readonly s3: S3Client;
  private readonly bucket: string;
  private template: Promise<EndpointTemplate> | null = null;

  constructor(s3: S3Client, bucket: string) {
    this.s3 = s3;
    this.bucket = bucket;
  }

  get(): Promise<EndpointTemplate> {
    this.template ??= getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: PROBE_KEY }), { expiresIn: 60 }).then((url) => {
      const u = new URL(url);
      if (!u.pathname.endsWith(`/${PROBE_KEY}`)) throw new Error(`cannot derive the S3 endpoint template from ${u.origin}${u.pathname}`);
      return { protocol: u.protocol, hostname: u.hostname, port: u.port ? Number(u.port) : undefined, host: u.host, pathPrefix: u.pathname.slice(0, -PROBE_KEY.length) };
    });
    // A failed resolution (credentials not ready yet) is retried on the next call.
    this.template.catch(() => (this.template = null));
    return this.template;
  }
}
