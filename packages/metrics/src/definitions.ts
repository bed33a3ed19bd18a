import { QUARANTINE_REASONS } from "@intake/domain";

/**
 * Every metric Intake exports, in one table: name, help, type, labels, buckets. The
 * registry (registry.ts), the dashboard test and the docs all read this table, so a metric
 * cannot exist in one place and be missing from another.
 *
 * Labels take bounded values only (a fixed list, or the few queue names): Prometheus keeps
 * one series per label combination, and a histogram multiplies that by its buckets. No
 * upload id, object key or signature name is ever a label value. No tenant either: tenants
 * are created at will, so a tenant label is unbounded (and names a customer on every
 * dashboard); per-tenant counts are the compliance summary's job, from the database.
 */

export type MetricType = "counter" | "gauge" | "histogram";

export interface MetricDefinition {
  name: string;
  help: string;
  type: MetricType;
  labelNames: readonly string[];
  buckets?: readonly number[];
  /** Which processes export it. */
  exportedBy: readonly ("api" | "worker")[];
  /** Read when scraped (collectors.ts): exported only by a process given its source. */
  scraped?: true;
}

// Seconds. Stage work runs from a millisecond (a one-pass inspect) to minutes (a large scan).
const STAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
// From the bytes' arrival to the verdict: tens of milliseconds on an idle pipeline, minutes
// behind a backlog or retries, an hour when clamd was away.
const LATENCY_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const WEBHOOK_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** `reason` of intake_verdicts_total: clean, or the quarantine reason. */
export const VERDICT_REASONS = ["clean", ...QUARANTINE_REASONS] as const;
export type VerdictReason = (typeof VERDICT_REASONS)[number];

export const UPLOAD_KINDS = ["single", "multipart"] as const;
export const VERDICT_OUTCOMES = ["clean", "quarantine"] as const;
export const STAGE_NAMES = ["inspect", "scan", "finalize"] as const;
/** `path`: through the stage queues one by one, or the one-pass check of a small upload. */
export const STAGE_PATHS = ["staged", "one_pass"] as const;
/** `outcome` of intake_jobs_total: done, failed with attempts left, failed for good. */
export const JOB_OUTCOMES = ["completed", "retried", "failed"] as const;
export const QUEUE_STATES = ["waiting", "active", "delayed", "failed"] as const;
/** `action` of intake_reaper_actions_total (the reaper's ReapSummary, named). */
export const REAPER_ACTIONS = ["expired", "arrived_late", "multipart_aborted", "orphan_multipart_aborted", "requeued", "purged", "staging_swept"] as const;
export type ReaperAction = (typeof REAPER_ACTIONS)[number];
/**
 * `outcome` of webhook deliveries (@intake/webhooks DeliveryOutcome): the receiver answered
 * 2xx; the attempt failed and will be retried; the last attempt failed; the address was
 * refused (SSRF guard, no retries); anything a newer webhooks package reports.
 */
export const WEBHOOK_OUTCOMES = ["delivered", "retried", "failed", "refused", "other"] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];
/** `reason` of intake_verdicts_held_total (@intake/pipeline HoldReason). */
export const HOLD_REASONS = ["signatures_stale", "test_signatures_only"] as const;
/** `outcome` of intake_rescan_items_total (@intake/db RescanOutcome, finished ones). */
export const RESCAN_ITEM_OUTCOMES = ["clean", "quarantined", "skipped", "failed"] as const;

const both = ["api", "worker"] as const;
const worker = ["worker"] as const;

export const METRICS = {
  uploadsCreated: {
    name: "intake_uploads_created_total",
    help: "Uploads declared through the API (a row written and a URL signed; idempotent replays not counted), by kind.",
    type: "counter",
    labelNames: ["kind"],
    exportedBy: ["api"],
  },
  verdicts: {
    name: "intake_verdicts_total",
    help: "Uploads that reached their final state, by reason: clean (verified) or the quarantine reason.",
    type: "counter",
    labelNames: ["reason"],
    exportedBy: worker,
  },
  rechecks: {
    name: "intake_rechecks_total",
    help: "Rechecks of released uploads that ended, by outcome (verified: released; quarantined: back in quarantine) and reason (clean, or the recheck's quarantine reason). Not counted in intake_verdicts_total, which counted the upload at its first verdict.",
    type: "counter",
    labelNames: ["outcome", "reason"],
    exportedBy: worker,
  },
  uploadToVerdict: {
    name: "intake_upload_to_verdict_seconds",
    help: "Time from the upload's bytes arriving (uploaded_at; created_at if unknown) to its verdict being written.",
    type: "histogram",
    labelNames: ["outcome"],
    buckets: LATENCY_BUCKETS,
    exportedBy: worker,
  },
  uploadToFinal: {
    name: "intake_upload_to_final_seconds",
    help: "Time from the upload's bytes arriving to its final object being in place (verified/ or quarantine/).",
    type: "histogram",
    labelNames: ["outcome"],
    buckets: LATENCY_BUCKETS,
    exportedBy: worker,
  },
  stageDuration: {
    name: "intake_stage_duration_seconds",
    help: "A stage's own work on one upload (queue wait excluded), by stage and path (staged queues or the one-pass check).",
    type: "histogram",
    labelNames: ["stage", "path"],
    buckets: STAGE_BUCKETS,
    exportedBy: worker,
  },
  queueWait: {
    name: "intake_queue_wait_seconds",
    help: "Time a job waited in its queue before a worker picked it up (first attempts only: retries wait on purpose).",
    type: "histogram",
    labelNames: ["queue"],
    buckets: WAIT_BUCKETS,
    exportedBy: worker,
  },
  jobs: {
    name: "intake_jobs_total",
    help: "Stage jobs run by this worker, by queue and outcome (completed, retried: failed with attempts left, failed: for good).",
    type: "counter",
    labelNames: ["queue", "outcome"],
    exportedBy: worker,
  },
  storageEventLag: {
    name: "intake_storage_event_lag_seconds",
    help: "SQS receive lag of each batch ingest receives: its largest time from SQS accepting an event (SentTimestamp) to ingest receiving it, over first deliveries.",
    type: "histogram",
    labelNames: [],
    buckets: LATENCY_BUCKETS,
    exportedBy: worker,
  },
  reaperActions: {
    name: "intake_reaper_actions_total",
    help: "What the reaper did, by action (expired, arrived_late, multipart_aborted, orphan_multipart_aborted, requeued, purged, staging_swept: staging copies a killed run left).",
    type: "counter",
    labelNames: ["action"],
    exportedBy: worker,
  },
  reaperLastPass: {
    name: "intake_reaper_last_pass_timestamp_seconds",
    help: "Unix time at which this process's reaper last finished a pass.",
    type: "gauge",
    labelNames: [],
    exportedBy: worker,
  },
  reaperInProgress: {
    name: "intake_reaper_in_progress_uploads",
    help: "Uploads idle past STUCK_AFTER_SECONDS that the last reaper pass left alone because their job is live (waiting, delayed or running).",
    type: "gauge",
    labelNames: [],
    exportedBy: worker,
  },
  webhookDeliveries: {
    name: "intake_webhook_deliveries_total",
    help: "Webhook delivery attempts, by outcome (delivered; retried: failed, will be retried; failed: the last attempt failed; refused: address not allowed).",
    type: "counter",
    labelNames: ["outcome"],
    exportedBy: worker,
  },
  webhookLatency: {
    name: "intake_webhook_delivery_seconds",
    help: "Time a webhook delivery attempt took, by outcome.",
    type: "histogram",
    labelNames: ["outcome"],
    buckets: WEBHOOK_BUCKETS,
    exportedBy: worker,
  },
  // Collected when scraped (collectors.ts): the state of shared things, asked at that moment.
  queueJobs: {
    name: "intake_queue_jobs",
    help: "Jobs in a BullMQ queue by state, read from Redis when scraped (every API process reports the same value: aggregate with max).",
    type: "gauge",
    labelNames: ["queue", "state"],
    exportedBy: ["api"],
    scraped: true,
  },
  queueOldestWaiting: {
    name: "intake_queue_oldest_waiting_seconds",
    help: "Age of the oldest waiting job of a queue (since it was added, or since its delay ended); 0 when none waits.",
    type: "gauge",
    labelNames: ["queue"],
    exportedBy: ["api"],
    scraped: true,
  },
  redisUp: {
    name: "intake_redis_up",
    help: "1 when Redis answered the queue counts at the last scrape, 0 otherwise.",
    type: "gauge",
    labelNames: [],
    exportedBy: ["api"],
    scraped: true,
  },
  clamdUp: {
    name: "intake_clamd_up",
    help: "1 when clamd answered VERSION at the last scrape, 0 otherwise.",
    type: "gauge",
    labelNames: [],
    exportedBy: both,
    scraped: true,
  },
  signatureAge: {
    name: "intake_clamd_signature_age_seconds",
    help: "Age of clamd's signature database (from the date VERSION names); absent when clamd names none (test signatures only) or is down.",
    type: "gauge",
    labelNames: [],
    exportedBy: both,
    scraped: true,
  },
  signatureMaxAge: {
    name: "intake_clamd_signature_max_age_seconds",
    help: "The configured SIGNATURE_MAX_AGE_HOURS, in seconds: a database older than this is flagged.",
    type: "gauge",
    labelNames: [],
    exportedBy: both,
    scraped: true,
  },
  signatureVersion: {
    name: "intake_clamd_signature_version",
    help: "The daily signature database version clamd reports (0 when it names none).",
    type: "gauge",
    labelNames: [],
    exportedBy: both,
    scraped: true,
  },
  testSignaturesOnly: {
    name: "intake_clamd_test_signatures_only",
    help: "1 when clamd runs with test signatures only (no official database): uploads are NOT scanned for real malware.",
    type: "gauge",
    labelNames: [],
    exportedBy: both,
    scraped: true,
  },
  deadLetterMessages: {
    name: "intake_dlq_messages",
    help: "Messages in the SQS dead-letter queue (storage events that could not be handled), read when scraped.",
    type: "gauge",
    labelNames: [],
    exportedBy: ["api"],
    scraped: true,
  },
  stuckAfter: {
    name: "intake_stuck_after_seconds",
    help: "The configured STUCK_AFTER_SECONDS: an upload in processing whose row has not moved for longer is stuck.",
    type: "gauge",
    labelNames: [],
    exportedBy: ["api"],
    scraped: true,
  },
  oldestIdle: {
    name: "intake_processing_oldest_idle_seconds",
    help: "How long the upload in processing that moved least recently has not moved (0 when none is in processing), read from the database when scraped.",
    type: "gauge",
    labelNames: [],
    exportedBy: ["api"],
    scraped: true,
  },
  heldUploads: {
    name: "intake_uploads_held",
    help: "Uploads held: every check passed but the signatures were too old (or test-only where not accepted), so no clean verdict was issued; they are checked again once fresh signatures load. Read from the database when scraped.",
    type: "gauge",
    labelNames: [],
    exportedBy: ["api"],
    scraped: true,
  },
  heldOldest: {
    name: "intake_uploads_held_oldest_seconds",
    help: "How long the longest-held upload has waited for fresh signatures (0 when none is held), read from the database when scraped.",
    type: "gauge",
    labelNames: [],
    exportedBy: ["api"],
    scraped: true,
  },
  verdictsHeld: {
    name: "intake_verdicts_held_total",
    help: "Clean results held instead of issued, by reason (signatures_stale, test_signatures_only).",
    type: "counter",
    labelNames: ["reason"],
    exportedBy: worker,
  },
  verdictCacheLookups: {
    name: "intake_verdict_cache_lookups_total",
    help: "Verdict cache lookups before clamd, by outcome: hit_clean (clamd skipped, every other check ran), hit_malware (quarantined under the cached signature), miss (clamd scanned).",
    type: "counter",
    labelNames: ["outcome"],
    exportedBy: worker,
  },
  rescanItems: {
    name: "intake_rescan_items_total",
    help: "Verified uploads a rescan after a signature update finished, by outcome: clean (the new version recorded), quarantined (matched: moved to quarantine/ as malware_on_rescan), skipped (no longer verified, already cleared by these signatures, run cancelled), failed (scan kept failing: left verified under its old clearance).",
    type: "counter",
    labelNames: ["outcome"],
    exportedBy: worker,
  },
  rescanBytes: {
    name: "intake_rescan_bytes_total",
    help: "Bytes of verified objects read and scanned again by rescans.",
    type: "counter",
    labelNames: [],
    exportedBy: worker,
  },
  signatureChanges: {
    name: "intake_signature_version_changes_total",
    help: "Changes of the signature version (engine, database version and date, operators' rule set) this worker saw clamd load.",
    type: "counter",
    labelNames: [],
    exportedBy: worker,
  },
  collectorErrors: {
    name: "intake_metrics_collect_errors_total",
    help: "Scrape-time collections that failed or timed out, by collector (queues, clamd, health).",
    type: "counter",
    labelNames: ["collector"],
    exportedBy: both,
  },
  processInfo: {
    name: "intake_process_info",
    help: "1, labelled with what this process is (api or worker) and the configured environment.",
    type: "gauge",
    labelNames: ["process", "env"],
    exportedBy: both,
  },
} as const satisfies Record<string, MetricDefinition>;

export type MetricKey = keyof typeof METRICS;
