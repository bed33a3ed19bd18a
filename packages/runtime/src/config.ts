import { resolve } from "node:path";
import { z } from "zod";
import { clusterPrefixProblems, DEFAULT_CLUSTER_QUEUE_PREFIX, parseClusterNodes, type RedisSettings } from "./redis-settings.ts";

/**
 * Process configuration, parsed and validated once at start and passed down explicitly.
 * Nothing else in the code base reads process.env. Defaults are the embedded development
 * stack (fauxqs, SQLite, local Redis and clamd); production replaces each with real
 * endpoints through the same variables.
 */
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * clamd size limits, measured on ClamAV 1.4.6 with AlertExceedsMax (infra/clamd/README.md):
 * every SIZE option is capped at 4 GiB; a PDF FlateDecode stream inflating past MaxFileSize
 * alerts with MaxFileSize at 1024 MiB but is cut silently ("stream: OK") with 1100 MiB and
 * more, so MaxFileSize may not exceed 1 GiB. The default keeps 24 MiB of margin below it,
 * and the largest upload is at most MaxFileSize: clamd scans an object of exactly
 * MaxFileSize bytes whole and alerts at one byte more.
 */
export const CLAMD_SIZE_OPTION_CAP = 4095 * MiB;
export const CLAMD_MAX_FILE_SIZE_CAP = 1024 * MiB;
export const DEFAULT_MAX_UPLOAD_BYTES = 1000 * MiB;

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const csv = z.string().transform((v) => v.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));

/**
 * Active content a policy may let through (ACTIVE_CONTENT_ALLOW): the domain's
 * ACTIVE_CONTENT_REASONS, spelled out here because runtime imports no domain code (a test,
 * test/pipeline/active-content.test.ts, keeps the two lists equal). Default: none allowed.
 */
export const ACTIVE_CONTENT_KINDS = ["pdf_javascript", "pdf_launch_action", "pdf_embedded_file", "office_macros", "office_ole_object", "trailing_data"] as const;
export type ActiveContentKind = (typeof ACTIVE_CONTENT_KINDS)[number];

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
  // The Uppy demo page (GET /demo) and its session endpoint: on by default in development only.
  DEMO_PAGE: bool.optional(),

  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL").optional(),
  SQLITE_PATH: z.string().optional(),
  // PostgreSQL connections per process: with many processes their sum must stay below the
  // server's max_connections (100 by default; two processes per role held 59-62 at 10 each).
  DATABASE_POOL_MAX: int(1, 100).default(10),
  // Run the schema migrations at start (the default outside production) or only check them
  // and refuse an older schema (production default: the one-shot `npm run migrate` runs first).
  MIGRATE_ON_START: bool.optional(),

  REDIS_URL: z.string().regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL").default("redis://127.0.0.1:6379"),
  // A Redis Cluster instead (comma-separated host:port): see redis-settings.ts.
  REDIS_CLUSTER_NODES: z.string().optional(),
  // Every Intake key starts with it. At most one hash tag ({...}), which a cluster requires;
  // default "intake", or "{intake}" with REDIS_CLUSTER_NODES.
  QUEUE_PREFIX: z.string().regex(/^[a-z0-9_-]*(\{[a-z0-9_-]+\})?[a-z0-9_-]*$/, "must be letters a-z, digits, '_' and '-', with at most one {hash tag}").min(1).optional(),

  AWS_REGION: z.string().default("us-east-1"),
  S3_ENDPOINT: z.url().optional(),
  S3_FORCE_PATH_STYLE: bool.default(false),
  // Which storage is behind S3_ENDPOINT, so what it guarantees is declared, not discovered
  // by a failing call (@intake/storage STORE_KINDS: signatures, copy-if-match, listings).
  STORAGE_KIND: z.enum(["aws", "ceph-rgw", "intake-local"]).default("aws"),
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
  // so archives that would be cut are refused before clamd's OK can count. The caps are
  // where ClamAV 1.4.6 still alerts when a limit is exceeded (infra/clamd/README.md).
  CLAMD_MAX_FILE_SIZE: int(1, CLAMD_MAX_FILE_SIZE_CAP).default(DEFAULT_MAX_UPLOAD_BYTES),
  CLAMD_MAX_SCAN_SIZE: int(1, CLAMD_SIZE_OPTION_CAP).default(CLAMD_SIZE_OPTION_CAP),
  // clamd's MaxRecursion (infra/clamd/up.sh: 17, clamd's default): the ZIP walk refuses
  // members nested that deep rather than trust clamd to have followed them.
  CLAMD_MAX_RECURSION: int(1, 255).default(17),
  // clamd's StreamMaxLength: the scanner stops feeding past it and reports "unscannable"
  // instead of racing clamd's reset. Unset: MAX_UPLOAD_BYTES, which is what
  // infra/clamd/up.sh configures.
  CLAMD_STREAM_MAX_BYTES: int(1, CLAMD_SIZE_OPTION_CAP).optional(),

  ALLOWED_TYPES: csv.default(DEFAULT_ALLOWED_TYPES.split(",")),
  // Whether archives (ZIP, gzip, tar, 7z, RAR...: @intake/domain ARCHIVE_TYPES) are accepted
  // as an upload's type: the default of every tenant's policy (tenant-policy.ts).
  ACCEPT_ARCHIVES: bool.default(true),
  ACTIVE_CONTENT_ALLOW: csv.default([]),
  // At most what clamd can really scan: see clamdLimitProblems.
  MAX_UPLOAD_BYTES: int(1).default(DEFAULT_MAX_UPLOAD_BYTES),
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
  // Staging copies (quarantine/<tenant>/<id>.promoting-<run>) at least this old may be swept
  // by the reaper, once their upload is final. Unset: twice STUCK_AFTER_SECONDS, at least an
  // hour (@intake/pipeline staging-sweep.ts says why).
  STAGING_SWEEP_AFTER_SECONDS: int(1).optional(),

  WORKER_ROLES: csv.default(["all"]),
  // Rescans after signature updates (the worker's rescan role, @intake/pipeline rescan.ts):
  // verified uploads this many days back are scanned again when the signature version
  // changes; their own queue and concurrency; the share of the scanners a rescan may take
  // while new uploads wait (0..1); the planner's page and tick.
  RESCAN_WINDOW_DAYS: int(1, 3650).default(30),
  RESCAN_CONCURRENCY: int(1, 64).default(2),
  RESCAN_MAX_SHARE: z.coerce.number().min(0).max(1).default(0.25),
  RESCAN_PAGE_SIZE: int(1, 10_000).default(500),
  RESCAN_TICK_SECONDS: int(1, 3600).default(10),
  RESCAN_ON_SIGNATURE_CHANGE: bool.default(true),
  INSPECT_CONCURRENCY: int(1, 256).default(8),
  SCAN_CONCURRENCY: int(1, 256).default(4),
  FINALIZE_CONCURRENCY: int(1, 256).default(8),
  JOB_ATTEMPTS: int(1, 100).default(8),
  JOB_BACKOFF_MS: int(10).default(2000),
  // Uploads declared at most this size are checked in one pass (one read held in memory:
  // inspect, scan and finalize in one scan job); larger ones stream through the stages.
  // Each scan job holds up to this much, so a scan worker holds SCAN_CONCURRENCY times it.
  // 0 sends every upload through the stages.
  ONE_PASS_MAX_BYTES: int(0, 64 * MiB).default(8 * MiB),

  // Image metadata stripping (packages/pipeline/src/image-stripping.ts). The deployment's
  // default for new uploads (recorded on each upload at create; a tenant's policy will set it).
  STRIP_IMAGE_METADATA: bool.default(false),
  // Images over either limit are quarantined (image_too_large) instead of decoded: the
  // pixel limit is libvips' own check of the header (a decompression bomb stops there), the
  // byte limit bounds what sharp holds in memory (it collects a stream's input and output
  // whole). Images stripped at once per worker process; each may hold about its pixel
  // count x channels bytes (a 90-degree EXIF rotation decodes the whole image): BENCHMARKS.md.
  IMAGE_MAX_PIXELS: int(1, 1_000_000_000).default(100_000_000),
  IMAGE_MAX_BYTES: int(1).default(256 * MiB),
  IMAGE_STRIP_CONCURRENCY: int(1, 64).default(1),

  // Abuse limits, counted in Redis so every API process shares them (fixed windows).
  // Requests per window per API key and per client address (a NAT holds many clients).
  RATE_LIMIT_WINDOW_SECONDS: int(1, 3600).default(60),
  RATE_LIMIT_PER_KEY: int(1).default(3000),
  RATE_LIMIT_PER_ADDRESS: int(1).default(6000),
  // Failed authentications: past the limit an address (or a key id) is refused for the block
  // time without its credentials being looked at. A 256-bit secret cannot be guessed; this
  // bounds the load and the noise of trying.
  AUTH_FAILURES_PER_ADDRESS: int(1).default(20),
  AUTH_FAILURES_PER_KEY: int(1).default(50),
  AUTH_FAILURE_WINDOW_SECONDS: int(1).default(900),
  AUTH_FAILURE_BLOCK_SECONDS: int(1).default(900),
  // Proxies in front of the API whose X-Forwarded-For entry is trusted (0: the socket's
  // address is the client's). Without it, behind a load balancer every client is one address.
  TRUSTED_PROXY_HOPS: int(0, 10).default(0),
  MAX_PARTS_PER_REQUEST: int(1, 10_000).default(100),
  // Per tenant: uploads not yet verified/quarantined/expired/aborted, their declared bytes,
  // and uploads declared per UTC day.
  QUOTA_PENDING_UPLOADS: int(1).default(1000),
  QUOTA_PENDING_BYTES: int(1).default(200 * GiB),
  QUOTA_UPLOADS_PER_DAY: int(1).default(100_000),

  // Admin sign-in (operators, compliance reviewers, admins): sessions in cookies, CSRF
  // tokens, login attempts limited per account and per address in Redis.
  ADMIN_SESSION_TTL_SECONDS: int(60, 7 * 24 * 3600).default(8 * 3600),
  ADMIN_SESSION_IDLE_SECONDS: int(60, 7 * 24 * 3600).default(3600),
  // Secure cookies: on by default when PUBLIC_URL is https, or forced either way here.
  ADMIN_COOKIE_SECURE: bool.optional(),
  ADMIN_LOGIN_FAILURES_PER_ACCOUNT: int(1).default(5),
  ADMIN_LOGIN_FAILURES_PER_ADDRESS: int(1).default(30),
  ADMIN_LOGIN_WINDOW_SECONDS: int(1).default(900),
  ADMIN_LOGIN_BLOCK_SECONDS: int(1).default(900),
  // OpenID Connect sign-in (optional): the identity provider's issuer URL and this client.
  OIDC_ISSUER: z.url().optional(),
  OIDC_CLIENT_ID: z.string().optional(),
  OIDC_CLIENT_SECRET: z.string().optional(),
  OIDC_REDIRECT_URL: z.url().optional(),
  OIDC_SCOPES: z.string().default("openid email profile"),
  // The claim that names the user's role (operator | compliance | admin), and optionally the
  // one listing the tenants a compliance reviewer is limited to.
  OIDC_ROLE_CLAIM: z.string().default("intake_role"),
  OIDC_TENANTS_CLAIM: z.string().optional(),
  // Plain http issuers are refused outside development and test.
  OIDC_ALLOW_INSECURE: bool.default(false),

  // Prometheus metrics: /metrics needs this bearer token or an operator's session. Workers
  // serve theirs on their own listener (0: no listener).
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  WORKER_METRICS_PORT: int(0, 65535).default(9464),
  WORKER_METRICS_HOST: z.string().default("127.0.0.1"),

  // Signature freshness: a database older than this is flagged (readiness, metrics, health).
  SIGNATURE_MAX_AGE_HOURS: int(1).default(48),
  // Clean verdicts made with signatures older than SIGNATURE_MAX_AGE_HOURS are held (status
  // held) until fresh ones load; test signatures only (no official database) are held
  // unless accepted. Defaults: production holds both, development and test neither (their
  // clamd runs the generated test database). Quarantine findings are never held.
  HOLD_ON_STALE_SIGNATURES: bool.optional(),
  ACCEPT_TEST_SIGNATURES: bool.optional(),
  // How often a scanning worker reads clamd's VERSION and loaded rule set (and resumes held
  // uploads once the signatures are fresh).
  SIGNATURE_CHECK_SECONDS: int(1, 3600).default(60),
  // Operators' own rules (.yar/.yara, .hdb/.hsb, .ndb), copied into clamd's database
  // directory by `npm run signatures -- reload` once each is proved loadable. Default:
  // <DATA_DIR>/clamd/rules. The database directory defaults to the one named in
  // <DATA_DIR>/clamd/clamd.conf (infra/clamd/up.sh).
  CLAMD_CUSTOM_RULES_DIR: z.string().optional(),
  CLAMD_DATABASE_DIR: z.string().optional(),
  // The verdict cache (issue 12 §4, @intake/domain verdict-cache.ts): clamd's answer for a
  // sha256 the pipeline computed, reused for identical bytes under the same signature version
  // and policy. Default on in production, off in development and test (whose suites count
  // clamd's scans). Clean entries serve their own tenant only unless shared (a shared
  // good-cache tells a tenant that someone uploaded these bytes); malware entries serve all.
  VERDICT_CACHE: bool.optional(),
  VERDICT_CACHE_SHARE_CLEAN: bool.default(false),
  VERDICT_CACHE_MALWARE_MAX_AGE_HOURS: int(1, 8760).default(168),
  VERDICT_CACHE_CLEAN_MAX_AGE_HOURS: int(1, 8760).default(168),
  // An SQS dead-letter queue to watch (default: <SQS_QUEUE_NAME>-dlq, as provisioned).
  SQS_DLQ_URL: z.url().optional(),

  // Verdict webhooks: delivery attempts, backoff, timeout, and the run of failed deliveries
  // after which an endpoint is disabled. Endpoints on loopback, private, link-local or
  // metadata addresses are refused unless allowed here (csv: loopback, private, link-local).
  WEBHOOK_ATTEMPTS: int(1, 50).default(8),
  WEBHOOK_BACKOFF_MS: int(10).default(10_000),
  WEBHOOK_TIMEOUT_MS: int(100, 60_000).default(10_000),
  WEBHOOK_DISABLE_AFTER_FAILURES: int(1).default(20),
  WEBHOOK_CONCURRENCY: int(1, 256).default(8),
  WEBHOOK_ALLOW_ADDRESSES: csv.default([]),
  // How long a rotated-out webhook secret keeps signing beside the new one unless the
  // rotation says otherwise (0: it ends at once; at most 7 days, as a rotation may ask).
  WEBHOOK_SECRET_OVERLAP_SECONDS: int(0, 604_800).default(86_400),
});

export type Env = z.infer<typeof EnvSchema>;

/**
 * Every variable the configuration reads, from the schema itself: what deployment files
 * (docker-compose.yml, infra/k8s) may set on an Intake process (test/deploy checks them).
 */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(EnvSchema.shape);

export interface Config {
  env: Env["NODE_ENV"];
  logLevel: Env["LOG_LEVEL"];
  dataDir: string;
  http: { host: string; port: number; publicUrl?: string; bodyLimitBytes: number; corsOrigins: string[] };
  devApiKey?: string;
  /** Serve the Uppy demo page at /demo, with POST /demo/session minting sessions for the dev tenant. */
  demoPage: boolean;
  database: { client: "pg"; url: string; poolMax: number } | { client: "sqlite"; filename: string };
  /** Migrate the schema at start, or refuse to start on an older one (MIGRATE_ON_START). */
  migrateOnStart: boolean;
  redis: RedisSettings;
  storage: {
    region: string;
    endpoint?: string;
    forcePathStyle: boolean;
    kind: Env["STORAGE_KIND"];
    bucket: string;
    sqsEndpoint?: string;
    queueUrl?: string;
    queueName: string;
    provision: boolean;
  };
  clamd: { host: string; port: number; timeoutMs: number; maxFileSize: number; maxScanSize: number; maxRecursion: number; maxStreamBytes: number };
  policy: {
    allowedTypes: string[];
    /** Active-content reasons that do not quarantine (everything else does). */
    activeContentAllow: ActiveContentKind[];
    maxSize: number;
    multipartThreshold: number;
    partSize: number;
    urlTtlSeconds: number;
    maxUrlTtlSeconds: number;
    downloadUrlTtlSeconds: number;
    /** New uploads ask for image metadata stripping (recorded on the upload at create). */
    stripImageMetadata: boolean;
    /** Archives accepted as an upload's type: the tenants' default (a tenant's policy may refuse them). */
    acceptArchives: boolean;
  };
  reaper: {
    pendingGraceSeconds: number;
    multipartTtlSeconds: number;
    stuckAfterSeconds: number;
    quarantineRetentionDays: number;
    everySeconds: number;
    /** How old a staging copy must be before the reaper may sweep it (STAGING_SWEEP_AFTER_SECONDS). */
    stagingSweepAfterSeconds: number;
  };
  limits: {
    windowSeconds: number;
    perKey: number;
    perAddress: number;
    authFailures: { perAddress: number; perKey: number; windowSeconds: number; blockSeconds: number };
    trustedProxyHops: number;
    maxPartsPerRequest: number;
  };
  quotas: { pendingUploads: number; pendingBytes: number; uploadsPerDay: number };
  worker: {
    roles: string[];
    concurrency: { inspect: number; scan: number; finalize: number };
    /** Uploads declared at most this size are checked in one pass (packages/pipeline/src/one-pass.ts). */
    onePassMaxBytes: number;
    /** Image metadata stripping's limits (image-stripping.ts): above them, image_too_large. */
    images: { maxPixels: number; maxBytes: number; concurrency: number };
    attempts: number;
    backoffMs: number;
  };
  /** Rescans after signature updates (the rescan role). */
  rescan: { windowDays: number; concurrency: number; maxShare: number; pageSize: number; tickSeconds: number; onSignatureChange: boolean };
  admin: {
    sessionTtlSeconds: number;
    sessionIdleSeconds: number;
    cookieSecure: boolean;
    loginLimits: { perAccount: number; perAddress: number; windowSeconds: number; blockSeconds: number };
    oidc?: { issuer: string; clientId: string; clientSecret?: string; redirectUrl: string; scopes: string; roleClaim: string; tenantsClaim?: string; allowInsecure: boolean };
  };
  metrics: { token?: string; workerPort: number; workerHost: string };
  verdictCache: { enabled: boolean; shareClean: boolean; malwareMaxAgeHours: number; cleanMaxAgeHours: number };
  signatures: {
    maxAgeHours: number;
    /** Hold clean verdicts while the database is older than maxAgeHours. */
    holdWhenStale: boolean;
    /** Issue clean verdicts with test signatures only (no official database). */
    acceptTestSignatures: boolean;
    checkSeconds: number;
    customRulesDir: string;
    /** null: the DatabaseDirectory of <dataDir>/clamd/clamd.conf. */
    databaseDir: string | null;
  };
  deadLetterQueueUrl?: string;
  webhooks: {
    attempts: number;
    backoffMs: number;
    timeoutMs: number;
    disableAfterFailures: number;
    concurrency: number;
    /** Address classes endpoints may resolve to despite the SSRF guard. */
    allowAddresses: WebhookAddressClass[];
    /** A secret rotation's default overlap, seconds (the old secret signs too meanwhile). */
    secretOverlapSeconds: number;
  };
}

/** Address classes the webhook SSRF guard refuses unless WEBHOOK_ALLOW_ADDRESSES names them. */
export const WEBHOOK_ADDRESS_CLASSES = ["loopback", "private", "link-local"] as const;
export type WebhookAddressClass = (typeof WEBHOOK_ADDRESS_CLASSES)[number];

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * The largest accepted upload must be one clamd really scans: the API and the worker load
 * this same check, so neither can accept what the other (or clamd) cannot honour.
 */
function clamdLimitProblems(e: Env): string[] {
  const problems: string[] = [];
  const stream = e.CLAMD_STREAM_MAX_BYTES ?? e.MAX_UPLOAD_BYTES;
  if (e.MAX_UPLOAD_BYTES > e.CLAMD_MAX_FILE_SIZE) {
    problems.push(`MAX_UPLOAD_BYTES (${e.MAX_UPLOAD_BYTES}) must not exceed CLAMD_MAX_FILE_SIZE (${e.CLAMD_MAX_FILE_SIZE}): clamd does not scan past MaxFileSize, so a larger upload could never be verified`);
  }
  if (e.MAX_UPLOAD_BYTES > stream) {
    problems.push(`MAX_UPLOAD_BYTES (${e.MAX_UPLOAD_BYTES}) must not exceed CLAMD_STREAM_MAX_BYTES (${stream}): clamd refuses a longer INSTREAM`);
  }
  if (e.CLAMD_MAX_SCAN_SIZE < e.MAX_UPLOAD_BYTES || e.CLAMD_MAX_SCAN_SIZE < e.CLAMD_MAX_FILE_SIZE) {
    problems.push(`CLAMD_MAX_SCAN_SIZE (${e.CLAMD_MAX_SCAN_SIZE}) must be at least MAX_UPLOAD_BYTES (${e.MAX_UPLOAD_BYTES}) and CLAMD_MAX_FILE_SIZE (${e.CLAMD_MAX_FILE_SIZE})`);
  }
  return problems;
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
  problems.push(...clamdLimitProblems(e));
  if (e.QUOTA_PENDING_BYTES < e.MAX_UPLOAD_BYTES) problems.push("QUOTA_PENDING_BYTES: must be at least MAX_UPLOAD_BYTES, or the largest allowed upload could never be declared");
  if (e.QUOTA_UPLOADS_PER_DAY < e.QUOTA_PENDING_UPLOADS) problems.push("QUOTA_UPLOADS_PER_DAY: must be at least QUOTA_PENDING_UPLOADS");
  // A scan may leave its row untouched for as long as clamd may go without progress: a
  // threshold below that calls a healthy scan stuck (the reaper then also asks BullMQ
  // whether the job is live, but a contradiction in the settings is refused outright).
  if (e.STUCK_AFTER_SECONDS * 1000 <= e.CLAMD_TIMEOUT_MS) {
    problems.push(`STUCK_AFTER_SECONDS (${e.STUCK_AFTER_SECONDS} s) must exceed CLAMD_TIMEOUT_MS (${e.CLAMD_TIMEOUT_MS} ms): a scan may rightly go that long without touching its upload, and must not be taken for a stuck one`);
  }
  // Younger than a stuck period, a staging copy may be a live run's that the pipeline itself
  // does not yet count as abandoned.
  if (e.STAGING_SWEEP_AFTER_SECONDS !== undefined && e.STAGING_SWEEP_AFTER_SECONDS < e.STUCK_AFTER_SECONDS) {
    problems.push(`STAGING_SWEEP_AFTER_SECONDS (${e.STAGING_SWEEP_AFTER_SECONDS} s) must be at least STUCK_AFTER_SECONDS (${e.STUCK_AFTER_SECONDS} s): a younger staging copy may belong to a run still in progress`);
  }
  for (const k of e.ACTIVE_CONTENT_ALLOW) if (!(ACTIVE_CONTENT_KINDS as readonly string[]).includes(k)) problems.push(`ACTIVE_CONTENT_ALLOW: unknown kind ${k} (known: ${ACTIVE_CONTENT_KINDS.join(", ")})`);
  const knownRoles = ["all", "ingest", "inspect", "scan", "finalize", "reaper", "recheck", "webhooks", "rescan"];
  for (const r of e.WORKER_ROLES) if (!knownRoles.includes(r)) problems.push(`WORKER_ROLES: unknown role ${r} (known: ${knownRoles.join(", ")})`);
  if (e.NODE_ENV === "production" && !e.DATABASE_URL) problems.push("DATABASE_URL: required in production");
  problems.push(...productionOnly(e));
  for (const k of e.WEBHOOK_ALLOW_ADDRESSES) if (!(WEBHOOK_ADDRESS_CLASSES as readonly string[]).includes(k)) problems.push(`WEBHOOK_ALLOW_ADDRESSES: unknown class ${k} (known: ${WEBHOOK_ADDRESS_CLASSES.join(", ")})`);
  const oidcSet = [e.OIDC_ISSUER, e.OIDC_CLIENT_ID, e.OIDC_REDIRECT_URL].filter((v) => v !== undefined).length;
  if (oidcSet > 0 && oidcSet < 3) problems.push("OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_REDIRECT_URL: set all three to enable OpenID Connect sign-in, or none");
  if (e.OIDC_ISSUER?.startsWith("http:") && !(e.OIDC_ALLOW_INSECURE && e.NODE_ENV !== "production")) problems.push("OIDC_ISSUER: must be https (OIDC_ALLOW_INSECURE=true allows http outside production)");
  const cluster = e.REDIS_CLUSTER_NODES === undefined ? null : parseClusterNodes(e.REDIS_CLUSTER_NODES);
  const queuePrefix = e.QUEUE_PREFIX ?? (cluster ? DEFAULT_CLUSTER_QUEUE_PREFIX : "intake");
  if (cluster) {
    problems.push(...cluster.problems, ...clusterPrefixProblems(queuePrefix));
    if (cleaned.REDIS_URL !== undefined) problems.push("REDIS_URL and REDIS_CLUSTER_NODES: set one, not both (REDIS_URL names one server, REDIS_CLUSTER_NODES a cluster)");
  }
  if (e.NODE_ENV === "production" && e.DEMO_PAGE) problems.push("DEMO_PAGE: not allowed in production (its endpoint hands out upload sessions without a key)");
  if (e.NODE_ENV === "production" && e.WEBHOOK_ALLOW_ADDRESSES.length > 0) problems.push("WEBHOOK_ALLOW_ADDRESSES: not allowed in production (it opens the webhook SSRF guard)");
  if (problems.length) throw new ConfigError(problems);

  const dataDir = resolve(e.DATA_DIR);
  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    dataDir,
    http: { host: e.HOST, port: e.PORT, publicUrl: e.PUBLIC_URL, bodyLimitBytes: e.BODY_LIMIT_BYTES, corsOrigins: e.CORS_ORIGINS },
    devApiKey: e.DEV_API_KEY,
    demoPage: e.DEMO_PAGE ?? e.NODE_ENV === "development",
    database: databaseSettings(e, dataDir),
    migrateOnStart: e.MIGRATE_ON_START ?? e.NODE_ENV !== "production",
    redis: { url: e.REDIS_URL, prefix: queuePrefix, ...(cluster?.settings ? { cluster: cluster.settings } : {}) },
    storage: {
      region: e.AWS_REGION,
      endpoint: e.S3_ENDPOINT,
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
      kind: e.STORAGE_KIND,
      bucket: e.S3_BUCKET,
      sqsEndpoint: e.SQS_ENDPOINT ?? e.S3_ENDPOINT,
      queueUrl: e.SQS_QUEUE_URL,
      queueName: e.SQS_QUEUE_NAME,
      provision: e.PROVISION_STORAGE,
    },
    clamd: { host: e.CLAMD_HOST, port: e.CLAMD_PORT, timeoutMs: e.CLAMD_TIMEOUT_MS, maxFileSize: e.CLAMD_MAX_FILE_SIZE, maxScanSize: e.CLAMD_MAX_SCAN_SIZE, maxRecursion: e.CLAMD_MAX_RECURSION, maxStreamBytes: e.CLAMD_STREAM_MAX_BYTES ?? e.MAX_UPLOAD_BYTES },
    policy: {
      allowedTypes: e.ALLOWED_TYPES,
      activeContentAllow: e.ACTIVE_CONTENT_ALLOW as ActiveContentKind[],
      maxSize: e.MAX_UPLOAD_BYTES,
      multipartThreshold: e.MULTIPART_THRESHOLD_BYTES,
      partSize: e.PART_SIZE_BYTES,
      urlTtlSeconds: e.UPLOAD_URL_TTL_SECONDS,
      maxUrlTtlSeconds: e.MAX_UPLOAD_URL_TTL_SECONDS,
      downloadUrlTtlSeconds: e.DOWNLOAD_URL_TTL_SECONDS,
      stripImageMetadata: e.STRIP_IMAGE_METADATA,
      acceptArchives: e.ACCEPT_ARCHIVES,
    },
    reaper: {
      pendingGraceSeconds: e.PENDING_GRACE_SECONDS,
      multipartTtlSeconds: e.MULTIPART_TTL_SECONDS,
      stuckAfterSeconds: e.STUCK_AFTER_SECONDS,
      quarantineRetentionDays: e.QUARANTINE_RETENTION_DAYS,
      everySeconds: e.REAPER_EVERY_SECONDS,
      stagingSweepAfterSeconds: e.STAGING_SWEEP_AFTER_SECONDS ?? Math.max(3600, 2 * e.STUCK_AFTER_SECONDS),
    },
    limits: {
      windowSeconds: e.RATE_LIMIT_WINDOW_SECONDS,
      perKey: e.RATE_LIMIT_PER_KEY,
      perAddress: e.RATE_LIMIT_PER_ADDRESS,
      authFailures: { perAddress: e.AUTH_FAILURES_PER_ADDRESS, perKey: e.AUTH_FAILURES_PER_KEY, windowSeconds: e.AUTH_FAILURE_WINDOW_SECONDS, blockSeconds: e.AUTH_FAILURE_BLOCK_SECONDS },
      trustedProxyHops: e.TRUSTED_PROXY_HOPS,
      maxPartsPerRequest: e.MAX_PARTS_PER_REQUEST,
    },
    quotas: { pendingUploads: e.QUOTA_PENDING_UPLOADS, pendingBytes: e.QUOTA_PENDING_BYTES, uploadsPerDay: e.QUOTA_UPLOADS_PER_DAY },
    worker: {
      roles: e.WORKER_ROLES,
      concurrency: { inspect: e.INSPECT_CONCURRENCY, scan: e.SCAN_CONCURRENCY, finalize: e.FINALIZE_CONCURRENCY },
      onePassMaxBytes: e.ONE_PASS_MAX_BYTES,
      images: { maxPixels: e.IMAGE_MAX_PIXELS, maxBytes: e.IMAGE_MAX_BYTES, concurrency: e.IMAGE_STRIP_CONCURRENCY },
      attempts: e.JOB_ATTEMPTS,
      backoffMs: e.JOB_BACKOFF_MS,
    },
    rescan: { windowDays: e.RESCAN_WINDOW_DAYS, concurrency: e.RESCAN_CONCURRENCY, maxShare: e.RESCAN_MAX_SHARE, pageSize: e.RESCAN_PAGE_SIZE, tickSeconds: e.RESCAN_TICK_SECONDS, onSignatureChange: e.RESCAN_ON_SIGNATURE_CHANGE },
    admin: {
      sessionTtlSeconds: e.ADMIN_SESSION_TTL_SECONDS,
      sessionIdleSeconds: e.ADMIN_SESSION_IDLE_SECONDS,
      cookieSecure: e.ADMIN_COOKIE_SECURE ?? e.PUBLIC_URL?.startsWith("https:") ?? false,
      loginLimits: { perAccount: e.ADMIN_LOGIN_FAILURES_PER_ACCOUNT, perAddress: e.ADMIN_LOGIN_FAILURES_PER_ADDRESS, windowSeconds: e.ADMIN_LOGIN_WINDOW_SECONDS, blockSeconds: e.ADMIN_LOGIN_BLOCK_SECONDS },
      ...(e.OIDC_ISSUER && e.OIDC_CLIENT_ID && e.OIDC_REDIRECT_URL
        ? { oidc: { issuer: e.OIDC_ISSUER, clientId: e.OIDC_CLIENT_ID, ...(e.OIDC_CLIENT_SECRET ? { clientSecret: e.OIDC_CLIENT_SECRET } : {}), redirectUrl: e.OIDC_REDIRECT_URL, scopes: e.OIDC_SCOPES, roleClaim: e.OIDC_ROLE_CLAIM, ...(e.OIDC_TENANTS_CLAIM ? { tenantsClaim: e.OIDC_TENANTS_CLAIM } : {}), allowInsecure: e.OIDC_ALLOW_INSECURE } }
        : {}),
    },
    metrics: { ...(e.METRICS_TOKEN ? { token: e.METRICS_TOKEN } : {}), workerPort: e.WORKER_METRICS_PORT, workerHost: e.WORKER_METRICS_HOST },
    verdictCache: { enabled: e.VERDICT_CACHE ?? e.NODE_ENV === "production", shareClean: e.VERDICT_CACHE_SHARE_CLEAN, malwareMaxAgeHours: e.VERDICT_CACHE_MALWARE_MAX_AGE_HOURS, cleanMaxAgeHours: e.VERDICT_CACHE_CLEAN_MAX_AGE_HOURS },
    signatures: {
      maxAgeHours: e.SIGNATURE_MAX_AGE_HOURS,
      holdWhenStale: e.HOLD_ON_STALE_SIGNATURES ?? e.NODE_ENV === "production",
      acceptTestSignatures: e.ACCEPT_TEST_SIGNATURES ?? e.NODE_ENV !== "production",
      checkSeconds: e.SIGNATURE_CHECK_SECONDS,
      customRulesDir: resolve(e.CLAMD_CUSTOM_RULES_DIR ?? resolve(e.DATA_DIR, "clamd", "rules")),
      databaseDir: e.CLAMD_DATABASE_DIR ? resolve(e.CLAMD_DATABASE_DIR) : null,
    },
    ...(e.SQS_DLQ_URL ? { deadLetterQueueUrl: e.SQS_DLQ_URL } : {}),
    webhooks: {
      attempts: e.WEBHOOK_ATTEMPTS,
      backoffMs: e.WEBHOOK_BACKOFF_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      disableAfterFailures: e.WEBHOOK_DISABLE_AFTER_FAILURES,
      concurrency: e.WEBHOOK_CONCURRENCY,
      allowAddresses: e.WEBHOOK_ALLOW_ADDRESSES as WebhookAddressClass[],
      secretOverlapSeconds: e.WEBHOOK_SECRET_OVERLAP_SECONDS,
    },
  };
}

/** The part of the configuration that names the database: all an admin command needs. */
export interface DatabaseConfig {
  env: Config["env"];
  dataDir: string;
  devApiKey?: string;
  database: Config["database"];
  /** As for the processes (MIGRATE_ON_START): the commands migrate only where processes do. */
  migrateOnStart: boolean;
}

/**
 * DEV_API_KEY makes any string of 8 characters or more a working key of the "dev" tenant:
 * a convenience for the dev stack, a guessable credential anywhere else.
 */
function productionOnly(e: Pick<Env, "NODE_ENV" | "DEV_API_KEY">): string[] {
  return e.NODE_ENV === "production" && e.DEV_API_KEY ? ["DEV_API_KEY: not allowed in production (it pins a development key)"] : [];
}

function databaseSettings(e: Pick<Env, "DATABASE_URL" | "SQLITE_PATH" | "DATABASE_POOL_MAX">, dataDir: string): Config["database"] {
  if (e.DATABASE_URL) return { client: "pg", url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX };
  // ":memory:" is SQLite's name for a private in-memory database, not a file to resolve.
  const file = e.SQLITE_PATH === ":memory:" ? ":memory:" : e.SQLITE_PATH ? resolve(e.SQLITE_PATH) : resolve(dataDir, "intake.sqlite");
  return { client: "sqlite", filename: file };
}

const DatabaseEnvSchema = EnvSchema.pick({ NODE_ENV: true, DATA_DIR: true, DATABASE_URL: true, SQLITE_PATH: true, DATABASE_POOL_MAX: true, DEV_API_KEY: true, MIGRATE_ON_START: true });

/**
 * The database settings alone, for commands that touch nothing else (the keys CLI): they
 * must not demand S3 or clamd settings they never use.
 */
export function loadDatabaseConfig(source: Record<string, string | undefined> = process.env): DatabaseConfig {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = DatabaseEnvSchema.safeParse(cleaned);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`));
  const e = parsed.data;
  const problems = [...(e.NODE_ENV === "production" && !e.DATABASE_URL ? ["DATABASE_URL: required in production"] : []), ...productionOnly(e)];
  if (problems.length) throw new ConfigError(problems);
  const dataDir = resolve(e.DATA_DIR);
  return {
    env: e.NODE_ENV,
    dataDir,
    ...(e.DEV_API_KEY ? { devApiKey: e.DEV_API_KEY } : {}),
    database: databaseSettings(e, dataDir),
    migrateOnStart: e.MIGRATE_ON_START ?? e.NODE_ENV !== "production",
  };
}

/** Every problem loadConfig would name for `source`; empty when it loads. */
export function configProblems(source: Record<string, string | undefined>): string[] {
  try {
    loadConfig(source);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

/** For entry points: load the config or print the problems and exit non-zero. */
export function loadConfigOrExit(source: Record<string, string | undefined> = process.env): Config {
  return orExit(() => loadConfig(source));
}

/** What `npm run signatures` needs: where clamd is, its data dir and the rule directories. */
export interface SignaturesCommandConfig {
  dataDir: string;
  clamd: Pick<Config["clamd"], "host" | "port">;
  signatures: Pick<Config["signatures"], "customRulesDir" | "databaseDir">;
}

const SignaturesEnvSchema = EnvSchema.pick({ DATA_DIR: true, CLAMD_HOST: true, CLAMD_PORT: true, CLAMD_CUSTOM_RULES_DIR: true, CLAMD_DATABASE_DIR: true });

/** The clamd and rule settings alone: the signatures command runs on the clamd host, without S3 or database settings. */
export function loadSignaturesCommandConfig(source: Record<string, string | undefined> = process.env): SignaturesCommandConfig {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = SignaturesEnvSchema.safeParse(cleaned);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`));
  const e = parsed.data;
  return {
    dataDir: resolve(e.DATA_DIR),
    clamd: { host: e.CLAMD_HOST, port: e.CLAMD_PORT },
    signatures: { customRulesDir: resolve(e.CLAMD_CUSTOM_RULES_DIR ?? resolve(e.DATA_DIR, "clamd", "rules")), databaseDir: e.CLAMD_DATABASE_DIR ? resolve(e.CLAMD_DATABASE_DIR) : null },
  };
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
