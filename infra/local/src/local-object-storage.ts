// Local S3 + SQS for development and tests: fauxqs behind a small streaming HTTP proxy
// that adds what fauxqs lacks, S3 bucket event notifications to SQS.
//
// Why a proxy: startFauxqs() does not expose its Fastify instance (no onResponse hook),
// and its message spy reports "uploaded" without telling Put, Post and
// CompleteMultipartUpload apart. The proxy sees the request line, headers and status of
// every call, forwards bodies as streams (never buffered), and after a successful
// object-creating request under the configured prefix sends the event S3 would send.
import http from "node:http";
import { join } from "node:path";
import { mkdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { startFauxqs, type FauxqsServer } from "fauxqs";
import { S3Client, HeadObjectCommand } from "@aws-sdk/client-s3";
import { SQSClient, GetQueueUrlCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import {
  buildObjectCreatedRecord,
  createSequencer,
  type ObjectCreatedEventName,
  type S3EventMessage,
  type S3TestEventMessage,
} from "./s3-event.ts";
import { accessKeyOf, classifyRequest, FormFieldSniffer, overrideRawHeaders, responseOverrides } from "./s3-request.ts";
import { answerPreflight, corsResponseHeaders, type StorageCorsOrigins } from "./storage-cors.ts";

export interface LocalObjectStorageLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface LocalObjectStorageOptions {
  /** Port clients use (S3 and SQS). 0 picks a free one. Default 4566. */
  port?: number;
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** Directory this instance owns: fauxqs state (SQLite) and object files. Omit for in-memory. */
  dataDir?: string;
  /** The bucket whose notifications are emulated. Default "intake-uploads". */
  bucket?: string;
  /** SQS queue name the events go to (looked up with GetQueueUrl). Default "intake-events". */
  eventQueueName?: string;
  /** Region of the queue, and awsRegion of the events. Default "us-east-1". */
  region?: string;
  /** Notification filter prefix: only keys under it produce events. Default "pending/". */
  prefix?: string;
  /** s3.configurationId in the events. Default "intake-pending-object-created". */
  configurationId?: string;
  /**
   * Send S3's {"Event":"s3:TestEvent"} message once, when the event queue is first found,
   * as S3 does when a notification configuration is saved. Default false.
   */
  sendTestEvent?: boolean;
  /** How long an event waits for its queue to exist before being dropped. Default 30000 ms. */
  queueWaitMs?: number;
  logger?: LocalObjectStorageLogger;
  /**
   * Origins a browser may upload from (the bucket CORS S3 would hold): a list, or "*" for
   * any (development). Default: none, as a bucket without CORS rules.
   */
  corsOrigins?: StorageCorsOrigins;
}

export interface LocalObjectStorage {
  /** http://host:port — use it as S3 endpoint (path style) and SQS endpoint. */
  readonly endpoint: string;
  readonly port: number;
  /** The underlying fauxqs server (inspectQueue, createBucket, ...). */
  readonly fauxqs: FauxqsServer;
  /** Resolves when every event triggered so far has been sent (or dropped). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

// fauxqs accepts any credentials; the emitter's own calls go straight to it, not the proxy.
const INTERNAL_CREDENTIALS = { accessKeyId: "local-emitter", secretAccessKey: "local-emitter" };
const BUCKET_OWNER_ID = "A1INTAKELOCALOWNER";
// fauxqs (Fastify) rejects request bodies over 11 MiB and closes the connection while the
// client is still sending, which surfaces as a bare EPIPE/502. Real S3 takes single PUTs
// up to 5 GiB, so answer with S3's own error and say what to do instead.
export const FAUXQS_MAX_BODY_BYTES = 11 * 1024 * 1024;

// Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection and must not be
// forwarded. Expect is answered by our own server (Node sends 100 Continue), so it is
// not forwarded either: otherwise the body would wait on a second 100 from upstream.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
]);

function filterRawHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

const defaultLogger: LocalObjectStorageLogger = {
  info: (m) => console.log(`[local-s3] ${m}`),
  warn: (m) => console.warn(`[local-s3] ${m}`),
  error: (m) => console.error(`[local-s3] ${m}`),
};

interface PendingEvent {
  eventName: ObjectCreatedEventName;
  bucket: string;
  key: string;
  eventTime: Date;
  sequencer: string;
  principalId: string;
  sourceIPAddress: string;
  requestId: string;
  hostId: string;
}

export async function startLocalObjectStorage(
  options: LocalObjectStorageOptions = {},
): Promise<LocalObjectStorage> {
  const port = options.port ?? 4566;
  const host = options.host ?? "127.0.0.1";
  const bucket = options.bucket ?? "intake-uploads";
  const queueName = options.eventQueueName ?? "intake-events";
  const region = options.region ?? "us-east-1";
  const prefix = options.prefix ?? "pending/";
  const configurationId = options.configurationId ?? "intake-pending-object-created";
  const queueWaitMs = options.queueWaitMs ?? 30_000;
  const log = options.logger ?? defaultLogger;

  let persistence: { dataDir: string; s3StorageDir: string } | undefined;
  if (options.dataDir) {
    // SQLite for queues and messages, plain files for objects (inspectable, and large
    // bodies stay out of the database).
    persistence = { dataDir: join(options.dataDir, "state"), s3StorageDir: join(options.dataDir, "objects") };
    mkdirSync(persistence.dataDir, { recursive: true });
    mkdirSync(persistence.s3StorageDir, { recursive: true });
  }

  // fauxqs itself listens on a free port; only the proxy's port is meant for clients.
  const fauxqs = await startFauxqs({ port: 0, logger: false, defaultRegion: region, ...persistence });
  const upstreamPort = fauxqs.port;
  const upstreamEndpoint = `http://127.0.0.1:${upstreamPort}`;
  const agent = new http.Agent({ keepAlive: true });

  const s3 = new S3Client({
    endpoint: upstreamEndpoint,
    region,
    forcePathStyle: true,
    credentials: INTERNAL_CREDENTIALS,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const sqs = new SQSClient({ endpoint: upstreamEndpoint, region, credentials: INTERNAL_CREDENTIALS });

  // ---- emitter -------------------------------------------------------------------------
  const nextSequencer = createSequencer();
  let queueUrl: string | undefined;
  let testEventSent = false;
  // Events are sent one after another, in the order the writes completed, so that the
  // queue sees them in sequencer order (consumers must still not rely on it).
  let chain: Promise<void> = Promise.resolve();
  let stopping = false;

  async function resolveQueueUrl(): Promise<string> {
    if (queueUrl) return queueUrl;
    const found = await sqs.send(new GetQueueUrlCommand({ QueueName: queueName }));
    queueUrl = found.QueueUrl!;
    if (options.sendTestEvent && !testEventSent) {
      testEventSent = true;
      const test: S3TestEventMessage = {
        Service: "Amazon S3",
        Event: "s3:TestEvent",
        Time: new Date().toISOString(),
        Bucket: bucket,
        RequestId: randomBytes(8).toString("hex").toUpperCase(),
        HostId: randomBytes(24).toString("base64"),
      };
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(test) }));
    }
    return queueUrl;
  }

  async function send(body: string, key: string): Promise<void> {
    const deadline = Date.now() + queueWaitMs;
    let delay = 100;
    for (;;) {
      try {
        const url = await resolveQueueUrl();
        await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
        return;
      } catch (err) {
        const name = (err as { name?: string }).name ?? "";
        // The queue is created by product code (provisionStorage); it may not exist yet,
        // or may have been deleted and recreated: look it up again.
        if (/QueueDoesNotExist|NonExistentQueue/.test(name)) queueUrl = undefined;
        if (stopping || Date.now() + delay > deadline) {
          log.error(`dropping event for s3://${bucket}/${key}: ${name || String(err)} (queue ${queueName})`);
          return;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  async function emit(ev: PendingEvent): Promise<void> {
    // Size and ETag come from the stored object, not from what the client claimed: that
    // is what S3 reports, and it is what the pipeline will check against.
    let head;
    try {
      head = await s3.send(new HeadObjectCommand({ Bucket: ev.bucket, Key: ev.key }));
    } catch (err) {
      // S3 can answer 200 to a CompleteMultipartUpload that then fails; no object, no event.
      log.warn(`no event for s3://${ev.bucket}/${ev.key}: object not readable after create (${(err as Error).name})`);
      return;
    }
    const message: S3EventMessage = {
      Records: [
        buildObjectCreatedRecord({
          region,
          eventName: ev.eventName,
          eventTime: ev.eventTime,
          principalId: ev.principalId,
          sourceIPAddress: ev.sourceIPAddress,
          requestId: ev.requestId,
          hostId: ev.hostId,
          configurationId,
          bucket: ev.bucket,
          bucketOwnerId: BUCKET_OWNER_ID,
          key: ev.key,
          size: Number(head.ContentLength ?? 0),
          eTag: head.ETag ?? "",
          sequencer: ev.sequencer,
        }),
      ],
    };
    await send(JSON.stringify(message), ev.key);
  }

  function enqueue(ev: PendingEvent): void {
    chain = chain.then(() => emit(ev)).catch((err) => log.error(`event emitter failed: ${String(err)}`));
  }

  // ---- proxy ---------------------------------------------------------------------------
  const corsOrigins = options.corsOrigins ?? [];
  const server = http.createServer((req, res) => {
    if (answerPreflight(corsOrigins, req, res)) return;
    const cors = corsResponseHeaders(corsOrigins, req.headers.origin);
    const declaredLength = Number(req.headers["content-length"] ?? 0);
    if (declaredLength > FAUXQS_MAX_BODY_BYTES) {
      res.writeHead(413, ["content-type", "application/xml", "connection", "close", ...cors] as unknown as http.OutgoingHttpHeaders);
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>EntityTooLarge</Code>` +
          `<Message>The local S3 stand-in (fauxqs) accepts request bodies up to ${FAUXQS_MAX_BODY_BYTES} bytes; ` +
          `use a multipart upload for larger objects</Message><ProposedSize>${declaredLength}</ProposedSize>` +
          `<MaxSizeAllowed>${FAUXQS_MAX_BODY_BYTES}</MaxSizeAllowed></Error>\n`,
      );
      // Read and discard the body so the client gets to read the answer.
      req.resume();
      return;
    }
    const copyCondition = req.method === "PUT" ? copySourceCondition(req.headers) : undefined;
    if (copyCondition) {
      // fauxqs ignores x-amz-copy-source-if-match; S3 refuses the copy with 412 when the
      // source's ETag differs. Checked here, before forwarding (a stand-in: not atomic).
      sourceETag(upstreamPort, copyCondition.source).then(
        (eTag) => {
          if (eTag !== null && (copyCondition.ifMatch === "*" || unquote(copyCondition.ifMatch) === unquote(eTag))) return forward();
          res.writeHead(412, { "content-type": "application/xml" });
          res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>x-amz-copy-source-If-Match</Condition></Error>\n`);
          req.resume();
        },
        (err: Error) => {
          res.writeHead(502, { "content-type": "text/plain" });
          res.end(`local S3 stand-in: could not check the copy source: ${err.message}\n`);
          req.resume();
        },
      );
      return;
    }
    forward();

    function forward(): void {
      const creating = classifyRequest(req.method, req.url, req.headers, bucket);
      const sniffer = creating?.eventName === "ObjectCreated:Post" ? new FormFieldSniffer(creating.boundary) : undefined;

      const upstream = http.request(
        {
          host: "127.0.0.1",
          port: upstreamPort,
          method: req.method,
          path: req.url,
          // Host is kept: fauxqs builds queue URLs and virtual-hosted bucket names from it.
          headers: filterRawHeaders(req.rawHeaders) as unknown as http.OutgoingHttpHeaders,
          agent,
        },
        (ures) => {
          const status = ures.statusCode ?? 502;
          // S3 applies response-* overrides to successful reads only.
          const overrides = status >= 200 && status < 300 ? responseOverrides(req.method, req.url, req.headers, bucket) : new Map<string, string>();
          res.writeHead(status, ures.statusMessage, [...overrideRawHeaders(filterRawHeaders(ures.rawHeaders), overrides), ...cors] as unknown as http.OutgoingHttpHeaders);
          ures.pipe(res);
          // fauxqs stores the object before it answers, so the response status is the
          // moment S3 "finished processing the request". A form upload with
          // success_action_redirect succeeds with 303.
          const ok = (status >= 200 && status < 300) || (sniffer !== undefined && status === 303);
          if (!creating || !ok) return;
          let key: string | undefined;
          if (creating.eventName === "ObjectCreated:Post") {
            if (sniffer!.overflow) log.warn("form upload: fields before the file part exceed 1 MiB; no event");
            key = sniffer!.key();
          } else {
            key = creating.key;
          }
          // The notification filter: only the pending prefix. The pipeline's own copies to
          // verified/ and quarantine/ must not come back as new uploads.
          if (key === undefined || !key.startsWith(prefix)) return;
          enqueue({
            eventName: creating.eventName,
            bucket: creating.bucket,
            key,
            eventTime: new Date(),
            sequencer: nextSequencer(),
            principalId: principalOf(accessKeyOf(req.headers, req.url, sniffer)),
            sourceIPAddress: (req.socket.remoteAddress ?? "127.0.0.1").replace(/^::ffff:/, ""),
            requestId: String(ures.headers["x-amz-request-id"] ?? randomBytes(8).toString("hex").toUpperCase()),
            hostId: String(ures.headers["x-amz-id-2"] ?? randomBytes(24).toString("base64")),
          });
        },
      );
      upstream.on("error", (err) => {
        if (!res.headersSent) {
          res.writeHead(502, { "content-type": "text/plain" });
          res.end(`local object storage proxy: upstream error: ${err.message}\n`);
        } else {
          res.destroy(err);
        }
      });
      if (sniffer) req.on("data", (chunk: Buffer) => sniffer.push(chunk));
      req.on("aborted", () => upstream.destroy());
      res.on("close", () => {
        if (!res.writableFinished) upstream.destroy();
      });
      req.pipe(upstream);
    }
  });
  // Large uploads over slow links must not be cut by Node's default request timeout.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65_000;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await fauxqs.stop();
    agent.destroy();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") {
      throw new Error(
        `local object storage: port ${host}:${port} is already in use (another fauxqs/dev stack running? set FAUXQS_PORT)`,
      );
    }
    throw err;
  }
  const actualPort = (server.address() as AddressInfo).port;
  const endpoint = `http://${host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host}:${actualPort}`;

  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    port: actualPort,
    fauxqs,
    idle: async () => {
      // Loop: an event may be enqueued while we wait for the previous tail.
      for (;;) {
        const tail = chain;
        await tail;
        if (tail === chain) return;
      }
    },
    stop: () => {
      stopped ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        stopping = true;
        await chain;
        s3.destroy();
        sqs.destroy();
        agent.destroy();
        await fauxqs.stop();
      })();
      return stopped;
    },
  };
}

/** The conditional copy a request asks for: x-amz-copy-source with x-amz-copy-source-if-match. */
function copySourceCondition(headers: http.IncomingHttpHeaders): { source: string; ifMatch: string } | undefined {
  const source = headers["x-amz-copy-source"];
  const ifMatch = headers["x-amz-copy-source-if-match"];
  if (typeof source !== "string" || typeof ifMatch !== "string") return undefined;
  // "bucket/key" or "/bucket/key", URL-encoded, optionally with ?versionId=.
  return { source: source.replace(/^\//, "").split("?")[0]!, ifMatch };
}

/** The ETag fauxqs holds for "bucket/key" (still URL-encoded), or null when it has none. */
function sourceETag(upstreamPort: number, source: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const head = http.request({ host: "127.0.0.1", port: upstreamPort, method: "HEAD", path: `/${source}` }, (res) => {
      res.resume();
      const eTag = res.headers.etag;
      resolve(res.statusCode === 200 && typeof eTag === "string" ? eTag : null);
    });
    head.on("error", reject);
    head.end();
  });
}

const unquote = (eTag: string) => eTag.replace(/^W\//, "").replace(/"/g, "");

function principalOf(accessKeyId: string | undefined): string {
  return accessKeyId ? `AWS:${accessKeyId}` : "Anonymous";
}
