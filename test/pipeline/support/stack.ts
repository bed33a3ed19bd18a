import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "@intake/api";
import { ApiKeyRepository, AuditLog, UploadRepository } from "@intake/db";
import type { Upload, UploadStatus } from "@intake/domain";
import { connectRedis, deleteKeysUnder, StageQueues } from "@intake/pipeline";
import { createLogger, loadConfig, type Config } from "@intake/runtime";
import { TEST_REDIS_URL, testQueuePrefix, testRedisEnv, waitFor } from "@intake/testkit";
import { freshDatabase, startStorage, type DatabaseKind, type StorageKind, type TestDatabase, type TestStorage } from "@intake/test";
import { startWorker, type RunningWorker, type WorkerOptions } from "@intake/worker";

/**
 * The whole stack for pipeline tests, wired as production wires it: the real API
 * (startApi), real workers (startWorker), a throwaway database (SQLite or PostgreSQL), a
 * throwaway bucket (fauxqs with the S3 event emitter, or Ceph RGW), the local Redis (or the
 * test Redis Cluster: INTAKE_TEST_REDIS=cluster, @intake/testkit redis-target.ts) under a
 * random queue prefix (never FLUSHALL: other test files share it) and the local clamd.
 */
/** The local server; a test that needs "the Redis of this stack" uses connectRedis(stack.config.redis, ...). */
export const REDIS_URL = TEST_REDIS_URL;
export const MiB = 1024 * 1024;

export interface StackOptions {
  storage: StorageKind;
  database: DatabaseKind;
  env?: Record<string, string>;
  /** Start workers with these roles right away (default: all that the storage supports); null starts none. */
  workerRoles?: string | null;
  workerOptions?: WorkerOptions;
  /** The fauxqs stand-in's bucket CORS (browser tests); default none. */
  storageCorsOrigins?: readonly string[] | "*";
}

export interface UploadOptions {
  contentType: string;
  filename?: string;
  /** Declared size, when it should differ from the bytes sent. */
  declaredSize?: number;
  sha256?: string;
  /** Call POST .../complete after the PUT (RGW sends no events, so there it is required). */
  complete?: boolean;
}

export interface PipelineStack {
  config: Config;
  storage: TestStorage;
  database: TestDatabase;
  uploads: UploadRepository;
  audit: AuditLog;
  queues: StageQueues;
  apiUrl: string;
  apiKey: string;
  tenant: string;
  workerLogs: string[];
  env: Record<string, string>;
  startWorker(roles?: string, opts?: WorkerOptions, env?: Record<string, string>): Promise<RunningWorker>;
  upload(bytes: Uint8Array, o: UploadOptions): Promise<{ id: string; putAt: number }>;
  complete(id: string): Promise<Response>;
  waitFor(id: string, statuses: UploadStatus[], timeoutMs?: number): Promise<Upload>;
  download(id: string): Promise<{ status: number; bytes: Buffer; contentType: string | null; disposition: string | null }>;
  auditActions(id: string): Promise<string[]>;
  /** Closes every worker started through startWorker (except `keep`). */
  stopWorkers(keep?: RunningWorker[]): Promise<void>;
  /** Deletes every key of this stack's queue prefix: a Redis restart, for this test only. */
  flushQueues(): Promise<number>;
  close(): Promise<void>;
}

export async function startPipelineStack(o: StackOptions): Promise<PipelineStack> {
  const storage = await startStorage(o.storage, o.storageCorsOrigins ? { corsOrigins: o.storageCorsOrigins } : {});
  const database = await freshDatabase(o.database);
  const dataDir = mkdtempSync(join(tmpdir(), "intake-pipeline-"));
  const prefix = testQueuePrefix("p");
  // startApi/startWorker build S3 clients from the SDK's default credential chain, as in
  // production; in tests that chain is the environment.
  process.env.AWS_ACCESS_KEY_ID = storage.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = storage.credentials.secretAccessKey;
  const env: Record<string, string> = {
    ...storage.env,
    DATA_DIR: dataDir,
    PORT: "0",
    LOG_LEVEL: "info",
    ...testRedisEnv(),
    QUEUE_PREFIX: prefix,
    JOB_ATTEMPTS: "5",
    JOB_BACKOFF_MS: "200",
    ...(database.settings.client === "pg" ? { DATABASE_URL: database.settings.url } : { SQLITE_PATH: database.settings.filename }),
    ...o.env,
  };
  const config = loadConfig(env);
  const silent = { write: () => undefined };
  const api = await startApi(config, { logger: createLogger({ level: "warn", name: "api", destination: silent }) });
  const tenant = "acme";
  const apiKey = (await new ApiKeyRepository(database.db).create(tenant, "pipeline-test")).key;
  const uploads = new UploadRepository(database.db);
  const audit = new AuditLog(database.db);
  const queues = new StageQueues({ redis: config.redis, prefix, attempts: config.worker.attempts, backoffMs: config.worker.backoffMs });
  const workers: RunningWorker[] = [];
  const workerLogs: string[] = [];

  const call = (method: string, path: string, body?: unknown) =>
    fetch(api.url + path, { method, headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body), redirect: "manual" });

  const stack: PipelineStack = {
    config,
    storage,
    database,
    uploads,
    audit,
    queues,
    apiUrl: api.url,
    apiKey,
    tenant,
    workerLogs,
    env,
    startWorker: async (roles = storage.events ? "all" : "inspect,scan,finalize,reaper", opts = {}, extraEnv = {}) => {
      const c = loadConfig({ ...env, WORKER_ROLES: roles, ...extraEnv });
      const logger = createLogger({ level: "info", name: "worker", destination: { write: (line: string) => void workerLogs.push(line) } });
      const w = await startWorker(c, { logger, store: storage.store, events: storage.events, drainTimeoutMs: 10_000, ...o.workerOptions, ...opts });
      workers.push(w);
      return w;
    },
    upload: async (bytes, u) => {
      const res = await call("POST", "/v1/uploads", {
        filename: u.filename ?? "file.bin",
        contentType: u.contentType,
        size: u.declaredSize ?? bytes.length,
        ...(u.sha256 ? { sha256: u.sha256 } : {}),
      });
      const created = (await res.json()) as { upload: { id: string }; url: string; headers: Record<string, string> };
      if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(created)}`);
      const put = await fetch(created.url, { method: "PUT", headers: created.headers, body: bytes });
      if (put.status !== 200) throw new Error(`PUT failed: ${put.status} ${await put.text()}`);
      const putAt = Date.now();
      if (u.complete) {
        const done = await stack.complete(created.upload.id);
        if (done.status !== 200) throw new Error(`complete failed: ${done.status} ${await done.text()}`);
      }
      return { id: created.upload.id, putAt };
    },
    complete: (id) => call("POST", `/v1/uploads/${id}/complete`, {}),
    waitFor: async (id, statuses, timeoutMs = 30_000) => {
      let last: Upload | null = null;
      return waitFor(
        async () => {
          last = await uploads.getById(id);
          return last && statuses.includes(last.status) ? last : null;
        },
        { timeoutMs, intervalMs: 50, message: `upload ${id} to reach ${statuses.join("|")}`, describeLast: () => ({ status: last?.status, reason: last?.reason, detail: last?.reasonDetail }) },
      );
    },
    download: async (id) => {
      const res = await call("GET", `/v1/uploads/${id}/download`);
      if (res.status !== 302) return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), contentType: null, disposition: null };
      const got = await fetch(res.headers.get("location")!);
      return { status: got.status, bytes: Buffer.from(await got.arrayBuffer()), contentType: got.headers.get("content-type"), disposition: got.headers.get("content-disposition") };
    },
    stopWorkers: async (keep = []) => {
      for (const w of workers.filter((x) => !keep.includes(x))) {
        workers.splice(workers.indexOf(w), 1);
        await w.close();
      }
    },
    auditActions: async (id) => (await audit.forUpload(id)).map((r) => r.action),
    flushQueues: async () => {
      const redis = connectRedis(config.redis, "worker");
      try {
        return await deleteKeysUnder(redis, prefix);
      } finally {
        redis.disconnect();
      }
    },
    close: async () => {
      for (const w of workers.splice(0)) await w.close().catch(() => undefined);
      await api.close();
      await stack.flushQueues().catch(() => undefined);
      await queues.close();
      await database.drop();
      await storage.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    // RGW sends no S3 events and has no SQS: there the client's complete call is the only
    // trigger, so the default roles leave out ingest (which would look for a queue).
    const defaultRoles = storage.events ? "all" : "inspect,scan,finalize,reaper";
    if (o.workerRoles !== null) await stack.startWorker(o.workerRoles ?? defaultRoles);
  } catch (err) {
    await stack.close();
    throw err;
  }
  return stack;
}

export const sha256Of = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
