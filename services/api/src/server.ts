import http from "node:http";
import type { AddressInfo } from "node:net";
import { once } from "node:events";
import type Koa from "koa";
import { AdminSessionRepository, AdminUserRepository, ApiKeyRepository, AuditLog, openDatabase, prepareSchema, pingDatabase, TenantPolicyRepository, TenantRepository, UploadRepository, UploadSessionRepository } from "@intake/db";
import { connectRedis, createPipelineHealth, createProducerConnection, RedisReceiveLag, StageQueues, STAGES, stageFor, untilReady } from "@intake/pipeline";
import type { Upload } from "@intake/domain";
import { createLogger, type Config, type Logger } from "@intake/runtime";
import { createClamdScanner, hasTestSignaturesOnly, loadsTestSignaturesOnly, TEST_SIGNATURES_WARNING, testDatabaseDate } from "@intake/scanner";
import { createS3Client, createSqsClient, provisionStorage, S3ObjectStore, SqsQueueDepth, STORE_KINDS } from "@intake/storage";
import { createApp } from "./app.ts";
import { deploymentTerms, TenantPolicies } from "./policies/tenant-policies.ts";
import { cacheAuthentications } from "./http/auth.ts";
import { createRedisRateLimits } from "./http/redis-rate-limits.ts";
import { adminGuard, createViews } from "./admin/index.ts";
import { createApiMetrics } from "./admin/metrics/api-metrics.ts";

export interface RunningApi {
  url: string;
  /** The Koa application, for tests that walk its routers (test/api/admin-routes.test.ts). */
  app: Koa;
  close(): Promise<void>;
}

/** How long readiness waits on clamd's PING: a loaded daemon answers in milliseconds. */
const CLAMD_PING_TIMEOUT_MS = 2000;
/** Start even when Redis is down (readiness reports it), but give it a moment to connect. */
const REDIS_CONNECT_WAIT_MS = 3000;
/** How long a revoked API key may keep working in a running API (see cacheAuthentications). */
const AUTH_CACHE_TTL_MS = 5000;
/** A rate-limit count that Redis has not answered by then goes to the in-memory insurance. */
const RATE_LIMIT_COMMAND_TIMEOUT_MS = 500;

/**
 * Wires the real adapters around createApp and listens. One S3 client, one database pool
 * and one Redis connection per process, built here once: creating an S3 client per
 * request would redo credential resolution and endpoint setup on every call.
 */
export async function startApi(config: Config, opts: { logger?: Logger; port?: number } = {}): Promise<RunningApi> {
  const logger = opts.logger ?? createLogger({ level: config.logLevel, name: "api" });
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const closeAll = async () => {
    // Reverse order of construction: stop taking requests first, close the database last.
    const steps = cleanups.splice(0).reverse();
    for (const c of steps) await Promise.resolve(c()).catch((err: unknown) => logger.warn({ err }, "shutdown step failed"));
  };

  try {
    const db = openDatabase(config.database);
    cleanups.push(() => db.destroy());
    // Migrates outside production; in production checks the schema and refuses an older one.
    await prepareSchema(db, { migrateOnStart: config.migrateOnStart });

    // Credentials from the SDK's default chain (AWS_ACCESS_KEY_ID/..., profiles, instance
    // roles): the config carries no secrets.
    const s3 = createS3Client({ region: config.storage.region, endpoint: config.storage.endpoint, forcePathStyle: config.storage.forcePathStyle });
    cleanups.push(() => s3.destroy());
    if (config.storage.provision) {
      const sqs = createSqsClient({ region: config.storage.region, endpoint: config.storage.sqsEndpoint });
      try {
        const result = await provisionStorage(s3, sqs, { bucket: config.storage.bucket, queueName: config.storage.queueName, region: config.storage.region, corsOrigins: config.http.corsOrigins });
        for (const w of result.warnings) logger.warn(w);
      } finally {
        sqs.destroy();
      }
    }
    const store = new S3ObjectStore(s3, config.storage.bucket, STORE_KINDS[config.storage.kind]);

    const redis = createProducerConnection(config.redis);
    // An 'error' listener keeps ioredis' reconnect errors from becoming unhandled events;
    // readiness reports Redis as down meanwhile.
    redis.on("error", (err: Error) => logger.debug({ code: (err as { code?: string }).code }, "redis connection error"));
    await untilReady(redis, REDIS_CONNECT_WAIT_MS);
    const queues = new StageQueues({ redis: config.redis, prefix: config.redis.prefix, attempts: config.worker.attempts, backoffMs: config.worker.backoffMs }, redis);
    cleanups.push(() => queues.close());
    // BullMQ re-emits connection errors on each queue; without a listener they are printed
    // to stderr outside the logger. Readiness reports Redis as down meanwhile.
    for (const stage of STAGES) queues.queue(stage).on("error", (err: Error) => logger.debug({ code: (err as { code?: string }).code, stage }, "queue error"));
    // StageQueues.enqueue fails fast when Redis is away and bounds the wait otherwise: the
    // client gets a 503 and retries; the upload's state is already recorded.
    // The first stage of an arrived upload, routed as the workers route it (stageFor).
    const startChecks = (upload: Upload) => queues.enqueue(stageFor(upload, config.worker.onePassMaxBytes) ?? "inspect", upload.id);

    // The limits' own connection: a request that needs it waits on it, so it fails fast (no
    // offline queue, a command timeout) and the limiter falls back to its insurance instead.
    // Request budgets are leased (leased-budgets.ts), so most requests do not use it at all;
    // auto-pipelining merges the commands of concurrent credential checks into one write.
    const limitsRedis = connectRedis(config.redis, "limits", { commandTimeoutMs: RATE_LIMIT_COMMAND_TIMEOUT_MS });
    limitsRedis.on("error", (err: Error) => logger.debug({ code: (err as { code?: string }).code }, "rate-limit redis connection error"));
    cleanups.push(() => limitsRedis.quit().catch(() => limitsRedis.disconnect()));
    await untilReady(limitsRedis, REDIS_CONNECT_WAIT_MS);
    // Blocks for failed authentications are announced to every API process on this one.
    const blocksRedis = connectRedis(config.redis, "subscriber");
    blocksRedis.on("error", (err: Error) => logger.debug({ code: (err as { code?: string }).code }, "rate-limit subscriber connection error"));
    // A subscribed connection has nothing to flush: closed at once, even while Redis is away.
    cleanups.push(() => blocksRedis.disconnect());
    const rateLimits = createRedisRateLimits(limitsRedis, config.limits, config.redis.prefix, { subscriber: blocksRedis });
    cleanups.push(() => rateLimits.close());

    const scanner = createClamdScanner({ host: config.clamd.host, port: config.clamd.port, connectTimeoutMs: CLAMD_PING_TIMEOUT_MS });
    // Two witnesses: the marker infra/clamd/up.sh leaves next to a generated database (same
    // host), and clamd's own VERSION, which also holds when clamd runs elsewhere. The
    // readiness check asks VERSION rather than PING: one round trip answers both.
    let clamdVersion = await scanner.version().catch(() => null);
    const testSignaturesOnly = () => hasTestSignaturesOnly(config.dataDir) || (clamdVersion !== null && loadsTestSignaturesOnly(clamdVersion));
    if (testSignaturesOnly()) logger.warn(TEST_SIGNATURES_WARNING);

    const uploads = new UploadRepository(db);
    // The health facts /readyz and the operators' pages show. The dead-letter queue is the
    // configured one, else the one provisionStorage creates beside the event queue.
    const healthSqs = createSqsClient({ region: config.storage.region, endpoint: config.storage.sqsEndpoint });
    cleanups.push(() => healthSqs.destroy());
    const health = createPipelineHealth({
      clamdVersion: () => scanner.version(),
      testSignaturesMarker: () => hasTestSignaturesOnly(config.dataDir),
      testDatabaseDate: () => testDatabaseDate(config.dataDir),
      receiveLag: new RedisReceiveLag(redis, config.redis.prefix),
      deadLetters: new SqsQueueDepth(healthSqs, config.deadLetterQueueUrl ? { url: config.deadLetterQueueUrl } : { name: `${config.storage.queueName}-dlq` }),
      uploads,
      maxAgeHours: config.signatures.maxAgeHours,
      stuckAfterSeconds: config.reaper.stuckAfterSeconds,
    });
    const sessions = new AdminSessionRepository(db);
    // One per process, shared by the create path and the admin pages: a change made here
    // applies to this process's next create at once (its cache entry is dropped).
    const policies = new TenantPolicies({ repository: new TenantPolicyRepository(db), tenants: new TenantRepository(db), deployment: deploymentTerms(config) });
    const metrics = createApiMetrics({ config, logger, queues, redis, scanner, health });
    const app = createApp({
      config,
      logger,
      uploads,
      apiKeys: cacheAuthentications(new ApiKeyRepository(db), { ttlMs: AUTH_CACHE_TTL_MS }),
      uploadSessions: new UploadSessionRepository(db),
      policies,
      rateLimits,
      store,
      processing: { startChecks },
      metrics: metrics.uploads,
      readiness: {
        checks: {
          database: () => pingDatabase(db),
          redis: () => redis.ping(),
          storage: () => store.ping(),
          clamd: async () => {
            clamdVersion = await scanner.version();
          },
        },
        testSignaturesOnly,
        health,
      },
      admin: {
        config,
        logger,
        db,
        guard: adminGuard({ sessions, idleSeconds: config.admin.sessionIdleSeconds, formLimitBytes: config.http.bodyLimitBytes, ...(config.http.publicUrl ? { publicUrl: config.http.publicUrl } : {}) }),
        views: createViews({ cache: config.env === "production" }),
        users: new AdminUserRepository(db),
        sessions,
        audit: new AuditLog(db),
        uploads,
        store,
        redis,
        queues,
        scanner,
        health,
        metrics,
        policies,
        now: () => new Date(),
      },
    });

    const server = http.createServer(app.callback());
    // Bodies here are small JSON documents: a slow client gets 30 s, not Node's 5 minutes.
    server.requestTimeout = 30_000;
    server.headersTimeout = 20_000;
    server.listen(opts.port ?? config.http.port, config.http.host);
    await once(server, "listening");
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // In-flight requests get a moment to finish before their sockets are cut.
          setTimeout(() => server.closeAllConnections(), 5000).unref();
        }),
    );
    const { port } = server.address() as AddressInfo;
    const host = config.http.host.includes(":") ? `[${config.http.host}]` : config.http.host;
    return { url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`, app, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
