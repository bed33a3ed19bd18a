import { resolve } from "node:path";
import { z } from "zod";

/**
 * Process configuration, parsed and validated once at start and passed down explicitly.
 * Nothing else in the code base reads process.env. Defaults are the embedded development
 * stack (fauxqs, SQLite, local Redis and clamd); production replaces each with real
 * endpoints through the same variables.
 */
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const csv = z.string().transform((v) => v.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));

export const DEFAULT_ALLOWED_TYPES = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "application/pdf",
  "application/zip",
  "text/plain",
  "text/csv",
  "application/json",
  "image/svg+xml",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
].join(",");

const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DATA_DIR: z.string().default(".data"),

  PORT: int(0, 65535).default(3000),
  HOST: z.string().default("127.0.0.1"),
  PUBLIC_URL: z.url().optional(),
  BODY_LIMIT_BYTES: int(1024, 10 * MiB).default(64 * 1024),
  DEV_API_KEY: z.string().min(8, "must be at least 8 characters").optional(),

  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL").optional(),
  SQLITE_PATH: z.string().optional(),

  REDIS_URL: z.string().regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL").default("redis://127.0.0.1:6379"),
  QUEUE_PREFIX: z.string().regex(/^[a-z0-9_-]+$/).default("intake"),

  AWS_REGION: z.string().default("us-east-1"),
  S3_ENDPOINT: z.url().optional(),
  S3_FORCE_PATH_STYLE: bool.default(false),
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be a valid S3 bucket name"),
  SQS_ENDPOINT: z.url().optional(),
  SQS_QUEUE_URL: z.url().optional(),
  SQS_QUEUE_NAME: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/).default("intake-events"),
  PROVISION_STORAGE: bool.default(false),
  CORS_ORIGINS: csv.default([]),

  CLAMD_HOST: z.string().default("127.0.0.1"),
  CLAMD_PORT: int(1, 65535).default(3310),
  // Longer than clamd's MaxScanTime (300 s in infra/clamd): a slow but clean scan must end
  // with clamd's own answer, not with our timeout, a retry and finally scan_error.
  CLAMD_TIMEOUT_MS: int(1000).default(330_000),
  // clamd's MaxFileSize and MaxScanSize (infra/clamd/up.sh writes them to limits.env). The
  // scan stage needs them: clamd cuts a deflated ZIP member at MaxFileSize without an alert,
  // so archives that would be cut are refused before clamd's OK can count.
  CLAMD_MAX_FILE_SIZE: int(1).default(2_147_483_645),
  CLAMD_MAX_SCAN_SIZE: int(1).default(4095 * MiB),
  // clamd's StreamMaxLength: the scanner stops feeding past it and reports "unscannable"
  // instead of racing clamd's reset. Unset: the smaller of MAX_UPLOAD_BYTES and 4095 MiB,
  // which is what infra/clamd/up.sh configures.
  CLAMD_STREAM_MAX_BYTES: int(1).optional(),

  ALLOWED_TYPES: csv.default(DEFAULT_ALLOWED_TYPES.split(",")),
  MAX_UPLOAD_BYTES: int(1).default(5 * GiB),
  MULTIPART_THRESHOLD_BYTES: int(5 * MiB).default(100 * MiB),
  PART_SIZE_BYTES: int(5 * MiB, 5 * GiB).default(16 * MiB),
  UPLOAD_URL_TTL_SECONDS: int(60, 3600).default(600),
  MAX_UPLOAD_URL_TTL_SECONDS: int(60, 3600).default(3600),
  DOWNLOAD_URL_TTL_SECONDS: int(10, 3600).default(60),
  PENDING_GRACE_SECONDS: int(0).default(3600),
  MULTIPART_TTL_SECONDS: int(60).default(24 * 3600),
  STUCK_AFTER_SECONDS: int(10).default(900),
  QUARANTINE_RETENTION_DAYS: int(1).default(90),
  REAPER_EVERY_SECONDS: int(1).default(60),

  WORKER_ROLES: csv.default(["all"]),
  INSPECT_CONCURRENCY: int(1, 256).default(8),
  SCAN_CONCURRENCY: int(1, 256).default(4),
  FINALIZE_CONCURRENCY: int(1, 256).default(8),
  JOB_ATTEMPTS: int(1, 100).default(8),
  JOB_BACKOFF_MS: int(10).default(2000),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  env: Env["NODE_ENV"];
  logLevel: Env["LOG_LEVEL"];
  dataDir: string;
  http: { host: string; port: number; publicUrl?: string; bodyLimitBytes: number; corsOrigins: string[] };
  devApiKey?: string;
  database: { client: "pg"; url: string } | { client: "sqlite"; filename: string };
  redis: { url: string; prefix: string };
  storage: {
    region: string;
    endpoint?: string;
    forcePathStyle: boolean;
    bucket: string;
    sqsEndpoint?: string;
    queueUrl?: string;
    queueName: string;
    provision: boolean;
  };
  clamd: { host: string; port: number; timeoutMs: number; maxFileSize: number; maxScanSize: number; maxStreamBytes: number };
  policy: {
    allowedTypes: string[];
    maxSize: number;
    multipartThreshold: number;
    partSize: number;
    urlTtlSeconds: number;
    maxUrlTtlSeconds: number;
    downloadUrlTtlSeconds: number;
  };
  reaper: {
    pendingGraceSeconds: number;
    multipartTtlSeconds: number;
    stuckAfterSeconds: number;
    quarantineRetentionDays: number;
    everySeconds: number;
  };
  worker: {
    roles: string[];
    concurrency: { inspect: number; scan: number; finalize: number };
    attempts: number;
    backoffMs: number;
  };
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Parses the environment; throws a ConfigError naming every bad or missing variable. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "unset": shells and compose files often export VAR= .
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.UPLOAD_URL_TTL_SECONDS > e.MAX_UPLOAD_URL_TTL_SECONDS) problems.push("UPLOAD_URL_TTL_SECONDS: must not exceed MAX_UPLOAD_URL_TTL_SECONDS");
  if (e.MULTIPART_THRESHOLD_BYTES > 5 * GiB) problems.push("MULTIPART_THRESHOLD_BYTES: must be at most 5 GiB (S3's single PUT limit)");
  const knownRoles = ["all", "ingest", "inspect", "scan", "finalize", "reaper"];
  for (const r of e.WORKER_ROLES) if (!knownRoles.includes(r)) problems.push(`WORKER_ROLES: unknown role ${r} (known: ${knownRoles.join(", ")})`);
  if (e.NODE_ENV === "production" && !e.DATABASE_URL) problems.push("DATABASE_URL: required in production");
  if (problems.length) throw new ConfigError(problems);

  const dataDir = resolve(e.DATA_DIR);
  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    dataDir,
    http: { host: e.HOST, port: e.PORT, publicUrl: e.PUBLIC_URL, bodyLimitBytes: e.BODY_LIMIT_BYTES, corsOrigins: e.CORS_ORIGINS },
    devApiKey: e.DEV_API_KEY,
    database: databaseSettings(e, dataDir),
    redis: { url: e.REDIS_URL, prefix: e.QUEUE_PREFIX },
    storage: {
      region: e.AWS_REGION,
      endpoint: e.S3_ENDPOINT,
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
      bucket: e.S3_BUCKET,
      sqsEndpoint: e.SQS_ENDPOINT ?? e.S3_ENDPOINT,
      queueUrl: e.SQS_QUEUE_URL,
      queueName: e.SQS_QUEUE_NAME,
      provision: e.PROVISION_STORAGE,
    },
    clamd: { host: e.CLAMD_HOST, port: e.CLAMD_PORT, timeoutMs: e.CLAMD_TIMEOUT_MS, maxFileSize: e.CLAMD_MAX_FILE_SIZE, maxScanSize: e.CLAMD_MAX_SCAN_SIZE, maxStreamBytes: e.CLAMD_STREAM_MAX_BYTES ?? Math.min(e.MAX_UPLOAD_BYTES, 4095 * MiB) },
    policy: {
      allowedTypes: e.ALLOWED_TYPES,
      maxSize: e.MAX_UPLOAD_BYTES,
      multipartThreshold: e.MULTIPART_THRESHOLD_BYTES,
      partSize: e.PART_SIZE_BYTES,
      urlTtlSeconds: e.UPLOAD_URL_TTL_SECONDS,
      maxUrlTtlSeconds: e.MAX_UPLOAD_URL_TTL_SECONDS,
      downloadUrlTtlSeconds: e.DOWNLOAD_URL_TTL_SECONDS,
    },
    reaper: {
      pendingGraceSeconds: e.PENDING_GRACE_SECONDS,
      multipartTtlSeconds: e.MULTIPART_TTL_SECONDS,
      stuckAfterSeconds: e.STUCK_AFTER_SECONDS,
      quarantineRetentionDays: e.QUARANTINE_RETENTION_DAYS,
      everySeconds: e.REAPER_EVERY_SECONDS,
    },
    worker: {
      roles: e.WORKER_ROLES,
      concurrency: { inspect: e.INSPECT_CONCURRENCY, scan: e.SCAN_CONCURRENCY, finalize: e.FINALIZE_CONCURRENCY },
      attempts: e.JOB_ATTEMPTS,
      backoffMs: e.JOB_BACKOFF_MS,
    },
  };
}

/** The part of the configuration that names the database: all an admin command needs. */
export interface DatabaseConfig {
  env: Config["env"];
  dataDir: string;
  devApiKey?: string;
  database: Config["database"];
}

function databaseSettings(e: Pick<Env, "DATABASE_URL" | "SQLITE_PATH">, dataDir: string): Config["database"] {
  return e.DATABASE_URL ? { client: "pg", url: e.DATABASE_URL } : { client: "sqlite", filename: e.SQLITE_PATH ? resolve(e.SQLITE_PATH) : resolve(dataDir, "intake.sqlite") };
}

const DatabaseEnvSchema = EnvSchema.pick({ NODE_ENV: true, DATA_DIR: true, DATABASE_URL: true, SQLITE_PATH: true, DEV_API_KEY: true });

/**
 * The database settings alone, for commands that touch nothing else (the keys CLI): they
 * must not demand S3 or clamd settings they never use.
 */
export function loadDatabaseConfig(source: Record<string, string | undefined> = process.env): DatabaseConfig {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = DatabaseEnvSchema.safeParse(cleaned);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`));
  const e = parsed.data;
  if (e.NODE_ENV === "production" && !e.DATABASE_URL) throw new ConfigError(["DATABASE_URL: required in production"]);
  const dataDir = resolve(e.DATA_DIR);
  return {
    env: e.NODE_ENV,
    dataDir,
    ...(e.DEV_API_KEY ? { devApiKey: e.DEV_API_KEY } : {}),
    database: databaseSettings(e, dataDir),
  };
}

/** For entry points: load the config or print the problems and exit non-zero. */
export function loadConfigOrExit(source: Record<string, string | undefined> = process.env): Config {
  return orExit(() => loadConfig(source));
}

/** loadDatabaseConfig, or print the problems and exit non-zero. */
export function loadDatabaseConfigOrExit(source: Record<string, string | undefined> = process.env): DatabaseConfig {
  return orExit(() => loadDatabaseConfig(source));
}

function orExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}
