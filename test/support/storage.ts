import { randomBytes } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { LOCAL_STORAGE_CAPABILITIES, startLocalObjectStorage, type LocalObjectStorage, type StorageCorsOrigins } from "@intake/local-infra";
import { CEPH_RGW_CAPABILITIES, createS3Client, createSqsClient, provisionStorage, S3ObjectStore, SqsEventQueue } from "@intake/storage";

export const TEST_REGION = "us-east-1";
export const FAUXQS_CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

export interface TestStorage {
  name: "fauxqs" | "rgw";
  endpoint: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  s3: S3Client;
  store: S3ObjectStore;
  /** fauxqs only: the SQS event queue fed by the local event emitter. */
  sqs?: SQSClient;
  events?: SqsEventQueue;
  queueName?: string;
  local?: LocalObjectStorage;
  /** Env for an API or worker process pointed at this storage. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** fauxqs on a free port with the local S3 event emitter, provisioned like a real account. */
export async function startFauxqsStorage(opts: { bucket?: string; queueName?: string; corsOrigins?: StorageCorsOrigins } = {}): Promise<TestStorage> {
  const bucket = opts.bucket ?? "intake-uploads";
  const queueName = opts.queueName ?? `intake-events-${randomBytes(4).toString("hex")}`;
  const local = await startLocalObjectStorage({ port: 0, bucket, eventQueueName: queueName, ...(opts.corsOrigins ? { corsOrigins: opts.corsOrigins } : {}), logger: { info() {}, warn() {}, error: (m) => console.error(m) } });
  const s3 = createS3Client({ region: TEST_REGION, endpoint: local.endpoint, forcePathStyle: true, credentials: FAUXQS_CREDENTIALS });
  const sqs = createSqsClient({ region: TEST_REGION, endpoint: local.endpoint, credentials: FAUXQS_CREDENTIALS });
  const provisioned = await provisionStorage(s3, sqs, { bucket, queueName, region: TEST_REGION, corsOrigins: [] });
  return {
    name: "fauxqs",
    endpoint: local.endpoint,
    bucket,
    credentials: FAUXQS_CREDENTIALS,
    s3,
    store: new S3ObjectStore(s3, bucket, LOCAL_STORAGE_CAPABILITIES),
    sqs,
    events: new SqsEventQueue(sqs, provisioned.queueUrl),
    queueName,
    local,
    env: {
      STORAGE_KIND: "intake-local",
      S3_ENDPOINT: local.endpoint,
      S3_FORCE_PATH_STYLE: "true",
      S3_BUCKET: bucket,
      SQS_ENDPOINT: local.endpoint,
      SQS_QUEUE_URL: provisioned.queueUrl,
      SQS_QUEUE_NAME: queueName,
      AWS_REGION: TEST_REGION,
      AWS_ACCESS_KEY_ID: FAUXQS_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: FAUXQS_CREDENTIALS.secretAccessKey,
    },
    stop: async () => {
      s3.destroy();
      sqs.destroy();
      await local.stop();
    },
  };
}

/**
 * Ceph RGW, started by infra/bin/test (infra/rgw/up.sh), which exports RGW_ENDPOINT,
 * RGW_ACCESS_KEY and RGW_SECRET_KEY. A missing RGW is a failure, not a skip: the
 * signature tests are the only proof that storage refuses a misused URL.
 */
export async function startRgwStorage(): Promise<TestStorage> {
  const endpoint = process.env.RGW_ENDPOINT;
  const accessKeyId = process.env.RGW_ACCESS_KEY;
  const secretAccessKey = process.env.RGW_SECRET_KEY;
  if (!endpoint || !accessKeyId || !secretAccessKey) {
    throw new Error("RGW_ENDPOINT, RGW_ACCESS_KEY and RGW_SECRET_KEY must be set: run the tests through infra/bin/test, which starts Ceph RGW");
  }
  const credentials = { accessKeyId, secretAccessKey };
  const bucket = `intake-${randomBytes(5).toString("hex")}`;
  const s3 = createS3Client({ region: TEST_REGION, endpoint, forcePathStyle: true, credentials });
  const { CreateBucketCommand } = await import("@aws-sdk/client-s3");
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    name: "rgw",
    endpoint,
    bucket,
    credentials,
    s3,
    store: new S3ObjectStore(s3, bucket, CEPH_RGW_CAPABILITIES),
    env: {
      STORAGE_KIND: "ceph-rgw",
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: "true",
      S3_BUCKET: bucket,
      AWS_REGION: TEST_REGION,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
    },
    stop: async () => {
      s3.destroy();
    },
  };
}

export type StorageKind = "fauxqs" | "rgw";
export const STORAGE_KINDS: StorageKind[] = ["fauxqs", "rgw"];

/** corsOrigins: the bucket CORS of the fauxqs stand-in, for tests with a browser (RGW: provisionStorage's). */
export function startStorage(kind: StorageKind, opts: { corsOrigins?: StorageCorsOrigins } = {}): Promise<TestStorage> {
  return kind === "fauxqs" ? startFauxqsStorage(opts) : startRgwStorage();
}

/**
 * A store on `storage` whose requests lose their If-Match header on the way, as with an
 * S3-compatible server (or proxy) that ignores it: what the store itself must then uphold.
 */
export function storeIgnoringIfMatch(storage: TestStorage): { store: S3ObjectStore; close(): void } {
  const s3 = createS3Client({ region: TEST_REGION, endpoint: storage.endpoint, forcePathStyle: true, credentials: storage.credentials });
  s3.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) delete request.headers["if-match"];
      return next(args);
    },
    { step: "build", name: "dropIfMatch" },
  );
  return { store: new S3ObjectStore(s3, storage.bucket, storage.store.capabilities), close: () => s3.destroy() };
}
