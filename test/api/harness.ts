import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { startApi } from "@intake/api";
import { ApiKeyRepository, UploadRepository } from "@intake/db";
import { arrivedSize, objectKey } from "@intake/domain";
import { StageQueues, STAGES, stageJobId } from "@intake/pipeline";
import { createLogger, loadConfig, type Config } from "@intake/runtime";
import { freshDatabase, startStorage, type DatabaseKind, type StorageKind, type TestDatabase, type TestStorage } from "@intake/test";
import { TEST_REDIS_URL, testQueuePrefix, testRedisEnv } from "@intake/testkit";

/**
 * The real API (startApi: the same wiring as production) on a throwaway database, a
 * throwaway bucket (fauxqs or Ceph RGW), the local Redis (or the test Redis Cluster:
 * INTAKE_TEST_REDIS=cluster, @intake/testkit redis-target.ts) under a random queue prefix and
 * the local clamd, with its log lines captured for inspection.
 */
export const MiB = 1024 * 1024;
/** The local server; a test that needs "the API's Redis" uses connectRedis(t.config.redis, ...). */
export const REDIS_URL = TEST_REDIS_URL;

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface CallOptions {
  key?: string;
  body?: unknown;
  rawBody?: RequestInit["body"];
  headers?: Record<string, string>;
}

export interface ApiUnderTest {
  url: string;
  config: Config;
  storage: TestStorage;
  database: TestDatabase;
  keys: ApiKeyRepository;
  uploads: UploadRepository;
  queues: StageQueues;
  dataDir: string;
  /** Every line the API logged, as written (JSON per line). */
  logs: string[];
  newKey(tenant: string): Promise<string>;
  call<T = any>(method: string, path: string, o?: CallOptions): Promise<ApiResponse<T>>;
  /** The inspect job for an upload, if one is in Redis. */
  /** The job that starts the pipeline for an upload (inspect, or scan for a one-pass check), if any. */
  firstStageJob(uploadId: string): Promise<{ id?: string; stage: "inspect" | "scan"; data: unknown } | undefined>;
  bucketKeys(prefix?: string): Promise<string[]>;
  countUploads(tenant?: string): Promise<number>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  storage: StorageKind;
  database: DatabaseKind;
  env?: Record<string, string>;
  logLevel?: string;
}

export async function startApiUnderTest(o: HarnessOptions): Promise<ApiUnderTest> {
  const storage = await startStorage(o.storage);
  const database = await freshDatabase(o.database);
  const dataDir = mkdtempSync(join(tmpdir(), "intake-api-"));
  const prefix = testQueuePrefix("t");
  // startApi builds its S3 client from the SDK's default credential chain, as in
  // production; in tests that chain is the environment.
  process.env.AWS_ACCESS_KEY_ID = storage.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = storage.credentials.secretAccessKey;
  const config = loadConfig({
    ...storage.env,
    DATA_DIR: dataDir,
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: o.logLevel ?? "info",
    // A test that points the API at another Redis (a dead port) sets REDIS_URL itself.
    ...(o.env?.REDIS_URL ? {} : testRedisEnv()),
    QUEUE_PREFIX: prefix,
    ...(database.settings.client === "pg" ? { DATABASE_URL: database.settings.url } : { SQLITE_PATH: database.settings.filename }),
    ...o.env,
  });
  const logs: string[] = [];
  const logger = createLogger({ level: config.logLevel, name: "api", destination: { write: (line: string) => void logs.push(line) } });
  const api = await startApi(config, { logger });
  const keys = new ApiKeyRepository(database.db);
  const uploads = new UploadRepository(database.db);
  // The API's Redis; the local test server when a test points the API at a dead one (as
  // before: close() obliterates these queues, which would wait for a dead Redis forever).
  const queues = new StageQueues({ redis: o.env?.REDIS_URL ? { url: TEST_REDIS_URL } : config.redis, prefix, attempts: 1, backoffMs: 10 });

  const call = async <T>(method: string, path: string, c: CallOptions = {}): Promise<ApiResponse<T>> => {
    const headers: Record<string, string> = { ...c.headers };
    if (c.key) headers.authorization = `Bearer ${c.key}`;
    let body: RequestInit["body"] = c.rawBody;
    if (c.body !== undefined) {
      body = JSON.stringify(c.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(api.url + path, { method, headers, body, redirect: "manual" });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed as T };
  };

  return {
    url: api.url,
    config,
    storage,
    database,
    keys,
    uploads,
    queues,
    dataDir,
    logs,
    newKey: async (tenant) => (await keys.create(tenant, "test")).key,
    call,
    firstStageJob: async (uploadId) => {
      for (const stage of ["inspect", "scan"] as const) {
        const job = await queues.queue(stage).getJob(stageJobId(stage, uploadId));
        if (job) return { id: job.id, stage, data: job.data };
      }
      return undefined;
    },
    bucketKeys: async (p = "") => {
      const out = await storage.s3.send(new ListObjectsV2Command({ Bucket: storage.bucket, Prefix: p }));
      return (out.Contents ?? []).map((c) => c.Key!);
    },
    countUploads: async (tenant) => {
      const q = database.db("uploads");
      if (tenant) q.where({ tenant_id: tenant });
      const [row] = await q.count({ n: "*" });
      return Number((row as { n: number | string }).n);
    },
    close: async () => {
      await api.close();
      for (const stage of STAGES) await queues.queue(stage).obliterate({ force: true }).catch(() => undefined);
      await queues.close();
      await database.drop();
      await storage.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** PUT bytes to a presigned URL with exactly the headers the API returned. */
export async function putTo(request: { url: string; headers: Record<string, string> }, bytes: Uint8Array, extraHeaders: Record<string, string> = {}): Promise<Response> {
  return fetch(request.url, { method: "PUT", headers: { ...request.headers, ...extraHeaders }, body: bytes });
}

/** The query parameters of a presigned URL, by name. */
export function queryOf(url: string): URLSearchParams {
  return new URL(url).searchParams;
}

export function randomBytesOf(size: number): Uint8Array {
  return new Uint8Array(randomBytes(size));
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** The pairs of storage and database each storage-facing test runs on. */
export const STACKS: [StorageKind, DatabaseKind][] = [
  ["fauxqs", "sqlite"],
  ["fauxqs", "pg"],
  ["rgw", "sqlite"],
  ["rgw", "pg"],
];

/**
 * Walks a completed (`uploaded`) upload to `verified` the way the pipeline does: through
 * the state machine, with the object copied to its verified key. The workers are another
 * package's business; the download route only needs the result.
 */
export async function markVerified(t: ApiUnderTest, uploadId: string, sniffedType: string): Promise<string> {
  const inspect = await t.uploads.transition(uploadId, "inspect", "inspect", { sniffedType });
  if (!inspect.applied) throw new Error(`upload ${uploadId} is ${inspect.upload?.status}, not uploaded`);
  await t.uploads.transition(uploadId, "decide", "scan", { verdict: "clean" });
  const u = inspect.upload;
  const finalKey = objectKey("verified", u.tenantId, u.id);
  await t.storage.store.copy(u.objectKey, finalKey, { size: arrivedSize(u), contentType: sniffedType, metadata: {} });
  const promoted = await t.uploads.transition(uploadId, "promote", "finalize", { finalKey });
  if (!promoted.applied) throw new Error("promote was not applied");
  return finalKey;
}
