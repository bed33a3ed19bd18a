import type { Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { S3RequestPresigner } from "@aws-sdk/s3-request-presigner";
import type { EndpointResolver } from "./endpoint-template.ts";

/**
 * The workers' three hot requests (GetObject, PutObject, DeleteObject of keys we
 * generated), without the SDK's per-request middleware stack. client.send() costs about
 * 0.6 ms of CPU per request here (endpoint rule evaluation, serialization, user agent,
 * retry and checksum plumbing, response deserialization): for a small upload that is more
 * than everything else the pipeline does. These requests always have the same shape, so
 * the endpoint is resolved once (endpoint-template.ts), and each request is signed by the SDK's own
 * S3RequestPresigner (query-string SigV4, every header the request carries signed, valid
 * for a minute) and sent through the client's own HTTP handler, so connection pooling,
 * timeouts and the agent stay the client's. Keys outside the plain character set are not
 * taken here (S3ObjectStore sends those through the SDK, which owns S3's URI encoding).
 *
 * Nothing is retried here except once after a connection that storage had closed (a
 * keep-alive socket reused as it was being dropped), which is what the SDK's retries
 * mostly absorb; anything else surfaces, and the stage's job retries with backoff.
 */
const EXPIRES_IN_SECONDS = 60;

export interface DirectResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: Readable;
}

/** The structural shape of the SDK's request signer (SigV4 in the Authorization header). */
interface RequestSigner {
  sign<R extends object>(request: R): Promise<R>;
}

/** The structural shape of the SDK's NodeHttpHandler that these requests use. */
interface HttpHandler {
  handle(request: object, options?: object): Promise<{ response: { statusCode: number; headers: Record<string, string | undefined>; body: unknown } }>;
}

export class DirectRequests {
  private readonly s3: S3Client;
  private readonly endpoints: EndpointResolver;
  private readonly presigner: S3RequestPresigner;
  private headerSigner: Promise<RequestSigner> | null = null;

  constructor(s3: S3Client, endpoints: EndpointResolver) {
    this.s3 = s3;
    this.endpoints = endpoints;
    // The client's resolved config: credentials, region, sha256 and S3's signing rules.
    this.presigner = new S3RequestPresigner({ ...s3.config });
  }

  /**
   * `payloadSha256`: the body's hex SHA-256, known to the caller. The request is then signed
   * in its Authorization header by the client's own signer (s3.config.signer()) with that
   * hash as the payload hash, so storage that checks signatures refuses any other body; a
   * presigned request can only say UNSIGNED-PAYLOAD.
   */
  async send(method: "GET" | "PUT" | "DELETE", key: string, headers: Record<string, string>, body?: Buffer, query: Record<string, string> = {}, payloadSha256?: string): Promise<DirectResponse> {
    try {
      return await this.sendOnce(method, key, headers, body, query, payloadSha256);
    } catch (err) {
      if (!isStaleConnection(err)) throw err;
      return this.sendOnce(method, key, headers, body, query, payloadSha256);
    }
  }

  private async sendOnce(method: "GET" | "PUT" | "DELETE", key: string, headers: Record<string, string>, body: Buffer | undefined, query: Record<string, string>, payloadSha256: string | undefined): Promise<DirectResponse> {
    const t = await this.endpoints.get();
    const all: Record<string, string> = { host: t.host, ...headers };
    if (body) all["content-length"] = String(body.length);
    const names = Object.keys(all);
    const request = { method, protocol: t.protocol, hostname: t.hostname, port: t.port, path: t.pathPrefix + key, headers: all, query };
    const signed = payloadSha256
      ? await (await this.signer()).sign({ ...request, headers: { ...all, "x-amz-content-sha256": payloadSha256 } })
      : await this.presigner.presign(
          request,
          // Every header signed; x-amz-* ones kept as headers (the presigner would move them
          // into the query string, where storage does not check the body against a checksum).
          { expiresIn: EXPIRES_IN_SECONDS, signableHeaders: new Set(names), unhoistableHeaders: new Set(names.filter((n) => n.startsWith("x-amz-"))) },
        );
    const handler = this.s3.config.requestHandler as unknown as HttpHandler;
    const { response } = await handler.handle({ ...signed, body });
    return { status: response.statusCode, headers: response.headers, body: response.body as Readable };
  }

  private signer(): Promise<RequestSigner> {
    // The resolved S3 config's signer (SignatureV4MultiRegion for s3, unescaped paths): the
    // one client.send() would use, with the client's credentials.
    this.headerSigner ??= (this.s3.config as unknown as { signer: () => Promise<RequestSigner> }).signer();
    this.headerSigner.catch(() => (this.headerSigner = null));
    return this.headerSigner;
  }
}

/** An error response's S3 code (`<Code>` of the XML body), read to its end so the socket is kept. */
export async function errorCode(response: DirectResponse): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response.body as AsyncIterable<Buffer>) chunks.push(chunk);
  return /<Code>([^<]{1,64})<\/Code>/.exec(Buffer.concat(chunks).toString("utf8"))?.[1] ?? `HTTP ${response.status}`;
}

/** Drains a body nobody reads, so the keep-alive socket goes back to the pool. */
export async function discard(response: DirectResponse): Promise<void> {
  for await (const _ of response.body as AsyncIterable<Buffer>) void _;
}

function isStaleConnection(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === "ECONNRESET" || code === "EPIPE";
}
