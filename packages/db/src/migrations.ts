import type { Knex } from "knex";
import { chainExistingRows } from "./audit-chain.ts";

/**
 * Schema migrations, kept in code (not a directory scan) so they run the same from source,
 * from tests and from any working directory. Timestamps are epoch milliseconds in BIGINT
 * columns: one representation for SQLite and PostgreSQL, ordered and compared as numbers.
 */
interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

const migrations: Migration[] = [
  {
    name: "0001_tenants_keys_uploads_audit",
    async up(knex) {
      await knex.schema.createTable("tenants", (t) => {
        t.string("id", 64).primary();
        t.string("name", 200).notNullable();
        t.bigInteger("created_at").notNullable();
      });
      await knex.schema.createTable("api_keys", (t) => {
        t.string("id", 32).primary(); // public part of the key, used for lookup
        t.string("tenant_id", 64).notNullable().references("tenants.id");
        t.string("name", 200).notNullable();
        t.string("secret_hash", 64).notNullable(); // sha256 hex of the secret part
        t.bigInteger("created_at").notNullable();
        t.bigInteger("last_used_at");
        t.bigInteger("revoked_at");
        t.index(["tenant_id"]);
      });
      await knex.schema.createTable("uploads", (t) => {
        t.string("id", 64).primary();
        t.string("tenant_id", 64).notNullable().references("tenants.id");
        t.string("status", 16).notNullable();
        t.string("filename", 1024).notNullable();
        t.string("declared_type", 255).notNullable();
        t.bigInteger("declared_size").notNullable();
        t.string("declared_sha256", 64);
        t.string("declared_md5", 32);
        t.text("metadata").notNullable();
        t.string("object_key", 512).notNullable().unique();
        t.string("final_key", 512);
        t.string("storage_upload_id", 1024); // multipart UploadId at the storage
        t.bigInteger("part_size");
        t.integer("part_count");
        t.bigInteger("url_expires_at").notNullable();
        t.string("idempotency_key", 255);
        t.string("idempotency_fingerprint", 64);
        t.bigInteger("stored_size");
        t.string("sniffed_type", 255);
        t.string("sha256", 64);
        t.string("verdict", 16);
        t.string("reason", 32);
        t.text("reason_detail");
        t.string("signature", 512);
        t.string("scanner_version", 512);
        t.integer("attempts").notNullable().defaultTo(0);
        t.bigInteger("created_at").notNullable();
        t.bigInteger("updated_at").notNullable();
        t.bigInteger("uploaded_at");
        t.bigInteger("inspected_at");
        t.bigInteger("scanned_at");
        t.bigInteger("decided_at");
        t.bigInteger("finished_at");
        t.bigInteger("purged_at"); // quarantined object deleted by retention
        t.unique(["tenant_id", "idempotency_key"]);
        t.index(["tenant_id", "created_at", "id"]);
        t.index(["status", "updated_at"]);
      });
      await knex.schema.createTable("audit_events", (t) => {
        t.bigIncrements("id").primary();
        t.bigInteger("at").notNullable();
        t.string("actor", 32).notNullable(); // api | ingest | inspect | scan | finalize | reaper | cli
        t.string("action", 64).notNullable();
        t.string("upload_id", 64);
        t.string("tenant_id", 64);
        t.string("object_key", 512);
        t.text("detail").notNullable(); // JSON
        t.index(["upload_id"]);
        t.index(["action", "at"]);
      });
    },
    async down(knex) {
      await knex.schema.dropTable("audit_events");
      await knex.schema.dropTable("uploads");
      await knex.schema.dropTable("api_keys");
      await knex.schema.dropTable("tenants");
    },
  },
  {
    // The ETag of the bytes inspect checked. Scan reads only that version (If-Match) and
    // finalize copies only that version (CopySourceIfMatch). Kept on the row, not only in
    // job data: a job re-created by the reaper after a Redis loss carries none.
    name: "0002_uploads_checked_etag",
    async up(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.string("checked_etag", 128);
      });
    },
    async down(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.dropColumn("checked_etag");
      });
    },
  },
  {
    // The MD5 of the scanned bytes of a multipart upload (whose ETag is not an MD5): finalize
    // confirms a copy whose ETag the store recomputed (fauxqs, AWS S3) against it.
    name: "0003_uploads_scanned_md5",
    async up(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.string("scanned_md5", 32);
      });
    },
    async down(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.dropColumn("scanned_md5");
      });
    },
  },
  {
    // Per-tenant counters for the quotas (open uploads, their declared bytes, uploads per
    // UTC day), changed in the same atomic units as the rows they count: one conditional
    // UPDATE enforces all three at create, without counting rows on the hot path. Open means
    // not yet in a terminal status; the terminal statuses are written out because a
    // migration must not change meaning when the code does.
    name: "0004_tenant_usage",
    async up(knex) {
      await knex.schema.createTable("tenant_usage", (t) => {
        t.string("tenant_id", 64).primary().references("tenants.id");
        t.bigInteger("pending_uploads").notNullable().defaultTo(0);
        t.bigInteger("pending_bytes").notNullable().defaultTo(0);
        t.integer("day").notNullable().defaultTo(0); // UTC days since the epoch
        t.bigInteger("day_uploads").notNullable().defaultTo(0);
      });
      await knex.raw(
        `insert into tenant_usage (tenant_id, pending_uploads, pending_bytes, day, day_uploads)
         select t.id, count(u.id), coalesce(sum(u.declared_size), 0), 0, 0
         from tenants t left join uploads u on u.tenant_id = t.id and u.status not in ('verified', 'quarantined', 'expired', 'aborted')
         group by t.id`,
      );
    },
    async down(knex) {
      await knex.schema.dropTable("tenant_usage");
    },
  },
  {
    // Issue 10: the people who review and operate (admin users, their sessions), the review's
    // own records (retention extensions, two-person overrides), the audit trail's hash chain,
    // and the verdict webhooks' outbox (endpoints, events, deliveries, attempts).
    name: "0005_admin_audit_chain_webhooks",
    async up(knex) {
      await knex.schema.createTable("admin_users", (t) => {
        t.string("id", 32).primary();
        t.string("email", 320).notNullable().unique(); // lower-cased
        t.string("name", 200).notNullable();
        t.string("role", 16).notNullable(); // operator | compliance | admin
        t.text("tenant_ids"); // JSON array: a reviewer limited to these tenants; null = all
        t.string("password_hash", 512); // scrypt, self-describing (null: OIDC only)
        t.string("oidc_issuer", 512);
        t.string("oidc_subject", 255);
        t.bigInteger("created_at").notNullable();
        // The admin who created this account in the settings (null: the command line, or
        // OIDC's first sign-in): the two-person override refuses a pair where one made the other.
        t.string("created_by", 32);
        t.bigInteger("last_login_at");
        t.bigInteger("disabled_at");
        t.unique(["oidc_issuer", "oidc_subject"]);
      });
      await knex.schema.createTable("admin_sessions", (t) => {
        t.string("id_hash", 64).primary(); // sha256 hex of the cookie's token
        t.string("user_id", 32).notNullable().references("admin_users.id");
        t.string("csrf_token", 64).notNullable();
        t.string("method", 16).notNullable(); // password | oidc
        t.bigInteger("created_at").notNullable();
        t.bigInteger("expires_at").notNullable();
        t.bigInteger("last_seen_at").notNullable();
        t.bigInteger("revoked_at");
        t.index(["user_id"]);
      });
      await knex.schema.alterTable("uploads", (t) => {
        t.bigInteger("retention_until"); // quarantine kept at least until then (extended by a reviewer)
        t.text("release_detail"); // JSON: the recheck a release ran and its outcome
        // The quarantine review pages newest first on (finished_at, id) (quarantine-queries.ts).
        t.index(["finished_at", "id"], "uploads_finished_at_id_index");
      });
      await knex.schema.createTable("quarantine_overrides", (t) => {
        t.string("id", 32).primary();
        t.string("upload_id", 64).notNullable().references("uploads.id");
        t.string("status", 16).notNullable(); // requested | approved | rejected | withdrawn
        t.string("signature", 512); // the finding the override accepts, and only that one
        t.string("requested_by", 32).notNullable().references("admin_users.id");
        t.text("request_justification").notNullable();
        t.bigInteger("requested_at").notNullable();
        t.string("decided_by", 32).references("admin_users.id");
        t.text("decision_justification");
        t.bigInteger("decided_at");
        t.index(["upload_id"]);
        t.index(["status", "requested_at"]);
      });
      // One open request per upload: two admins requesting at once cannot both succeed.
      await knex.raw(`create unique index quarantine_overrides_one_open on quarantine_overrides (upload_id) where status = 'requested'`);
      // The audit trail as a hash chain: seq orders it (1, 2, 3... with no gaps), hash covers
      // the row's content and the previous row's hash. audit_chain_head holds the last link,
      // locked by each writer, so writers from many processes append one at a time.
      await knex.schema.alterTable("audit_events", (t) => {
        t.bigInteger("seq").unique();
        t.string("actor_id", 320); // the admin user (id) or key behind a human action
        t.text("justification");
        t.string("state_before", 16);
        t.string("state_after", 16);
        t.string("prev_hash", 64);
        t.string("hash", 64);
      });
      await knex.schema.createTable("audit_chain_head", (t) => {
        t.integer("id").primary(); // always 1
        t.bigInteger("seq").notNullable();
        t.string("hash", 64).notNullable();
        // The link before the last: PostgreSQL appends in one statement (audit-log.ts), whose
        // RETURNING gives the head's new values only.
        t.string("prev_hash", 64).notNullable();
      });
      // Exports and the summary filter the trail by date.
      await knex.schema.alterTable("audit_events", (t) => {
        t.index(["at"]);
      });
      // Rows written before the chain existed become its first links, in insertion order; the
      // head is written here (seq 0 and the genesis hash on an empty trail).
      await chainExistingRows(knex);
      await refuseAuditEdits(knex);
      await knex.schema.createTable("webhook_endpoints", (t) => {
        t.string("id", 32).primary();
        t.string("tenant_id", 64).notNullable().references("tenants.id");
        t.string("url", 2048).notNullable();
        t.string("description", 200).notNullable().defaultTo("");
        t.string("secret", 128).notNullable(); // whsec_... (Standard Webhooks): needed to sign
        t.text("events").notNullable(); // JSON array of event types
        t.bigInteger("created_at").notNullable();
        t.integer("consecutive_failures").notNullable().defaultTo(0);
        t.bigInteger("disabled_at");
        t.text("disabled_reason");
        t.index(["tenant_id"]);
      });
      // The outbox: written in the transaction of the state change that causes the event.
      await knex.schema.createTable("webhook_events", (t) => {
        t.string("id", 40).primary(); // msg_...: the webhook-id receivers de-duplicate on
        t.string("tenant_id", 64).notNullable();
        t.string("type", 64).notNullable();
        t.string("upload_id", 64);
        t.text("payload").notNullable(); // the JSON body, exactly as signed and sent
        t.bigInteger("created_at").notNullable();
        t.index(["tenant_id", "created_at"]);
      });
      await knex.schema.createTable("webhook_deliveries", (t) => {
        t.string("id", 40).primary();
        t.string("event_id", 40).notNullable().references("webhook_events.id");
        t.string("endpoint_id", 32).notNullable().references("webhook_endpoints.id");
        t.string("status", 16).notNullable(); // pending | delivered | failed
        t.integer("attempts").notNullable().defaultTo(0);
        // Redeliveries of this delivery so far: each one is a new BullMQ job (the finished one
        // keeps its id, and adding an existing id is a no-op), with the same webhook-id.
        t.integer("round").notNullable().defaultTo(0);
        t.integer("last_status_code");
        t.text("last_error");
        t.bigInteger("created_at").notNullable();
        t.bigInteger("enqueued_at"); // handed to the webhook queue (the relay picks rows without it)
        t.bigInteger("delivered_at");
        t.bigInteger("updated_at").notNullable();
        t.unique(["event_id", "endpoint_id"]);
        t.index(["enqueued_at"]);
        // The relay's sweep of pending, queued rows in hand-over order; delivered rows keep
        // their enqueued_at, so an index on enqueued_at alone would walk the whole history.
        t.index(["status", "enqueued_at", "id"]);
        t.index(["endpoint_id", "created_at"]);
      });
      await knex.schema.createTable("webhook_attempts", (t) => {
        t.bigIncrements("id").primary();
        t.string("delivery_id", 40).notNullable().references("webhook_deliveries.id");
        t.bigInteger("at").notNullable();
        t.integer("status_code");
        t.integer("latency_ms").notNullable();
        t.text("error");
        t.index(["delivery_id"]);
      });
    },
    async down(knex) {
      await knex.schema.dropTable("webhook_attempts");
      await knex.schema.dropTable("webhook_deliveries");
      await knex.schema.dropTable("webhook_events");
      await knex.schema.dropTable("webhook_endpoints");
      await knex.schema.dropTable("audit_chain_head");
      await allowAuditEdits(knex);
      await knex.schema.alterTable("audit_events", (t) => {
        t.dropIndex(["at"]);
        for (const c of ["seq", "actor_id", "justification", "state_before", "state_after", "prev_hash", "hash"]) t.dropColumn(c);
      });
      await knex.schema.dropTable("quarantine_overrides");
      await knex.schema.alterTable("uploads", (t) => {
        t.dropColumn("retention_until");
        t.dropColumn("release_detail");
      });
      await knex.schema.dropTable("admin_sessions");
      await knex.schema.dropTable("admin_users");
    },
  },
  {
    name: "0006_clients",
    async up(knex) {
      // Upload sessions (issue 11): a short-lived token a browser holds instead of the API key.
      await knex.schema.createTable("upload_sessions", (t) => {
        t.string("id", 32).primary(); // public part of the token, used for lookup
        t.string("tenant_id", 64).notNullable().references("tenants.id");
        t.string("secret_hash", 64).notNullable(); // sha256 hex of the secret part
        t.bigInteger("created_at").notNullable();
        t.bigInteger("expires_at").notNullable();
        t.bigInteger("revoked_at");
        t.integer("max_files").notNullable();
        t.bigInteger("max_bytes"); // null: only the per-file maximum applies
        t.text("allowed_types").notNullable(); // JSON array of canonical types
        t.text("metadata").notNullable(); // JSON object merged into every upload's metadata
        t.integer("files_used").notNullable().defaultTo(0);
        t.bigInteger("bytes_used").notNullable().defaultTo(0);
        t.index(["tenant_id"]);
      });
      // Which session created an upload: a session may touch only these.
      await knex.schema.createTable("upload_session_uploads", (t) => {
        t.string("upload_id", 64).primary().references("uploads.id");
        t.string("session_id", 32).notNullable().references("upload_sessions.id");
        t.index(["session_id"]);
      });
    },
    async down(knex) {
      await knex.schema.dropTable("upload_session_uploads");
      await knex.schema.dropTable("upload_sessions");
    },
  },
  {
    name: "0007_size_learned_on_arrival",
    async up(knex) {
      // Uploads created through the Uppy routes without a size (Uppy sends none): a size
      // limit instead of a declared size (@intake/domain upload-size.ts), and the bytes the
      // upload holds in the tenant's open-bytes quota and its session's budget: the limit
      // until the object arrives, then its real size (settled in the arrival's unit).
      // declared_size stays NOT NULL: SQLite can only drop that by rebuilding the table, and
      // the rebuild's DROP TABLE fails the foreign keys that point at uploads inside the
      // migration's transaction. No declaration has 0 bytes (at least 1 is required), so a
      // size-unknown row stores 0 there and is told apart by its size_limit.
      await knex.schema.alterTable("uploads", (t) => {
        t.bigInteger("size_limit"); // null: the declared size is exact
        t.bigInteger("reserved_bytes"); // null: declared_size
      });
    },
    async down(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.dropColumn("size_limit");
        t.dropColumn("reserved_bytes");
      });
    },
  },
  {
    // Image metadata stripping (packages/pipeline/src/image-stripping.ts): whether the
    // upload's policy asks for it, recorded at create so the pipeline acts on the policy the
    // upload was made under; and, once a stripped copy is promoted, what is served (its
    // SHA-256 and size: sha256/stored_size stay those of the bytes as uploaded).
    name: "0008_uploads_image_metadata_stripping",
    async up(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.boolean("strip_image_metadata").notNullable().defaultTo(false);
        t.boolean("metadata_stripped").notNullable().defaultTo(false);
        t.string("served_sha256", 64);
        t.bigInteger("served_size");
      });
    },
    async down(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.dropColumn("served_size");
        t.dropColumn("served_sha256");
        t.dropColumn("metadata_stripped");
        t.dropColumn("strip_image_metadata");
      });
    },
  },
  {
    // Per-tenant policies (@intake/domain tenant-policy.ts): each tenant's own terms over the
    // deployment's defaults, with a version counted up on every change; and, on each upload,
    // the terms in force at its create (the pipeline judges it by them), their version and
    // digest, and the quarantine retention the reaper reads in SQL (null: the deployment's).
    name: "0009_tenant_policies",
    async up(knex) {
      await knex.schema.createTable("tenant_policies", (t) => {
        t.string("tenant_id", 64).primary().references("tenants.id");
        t.text("policy").notNullable(); // JSON: the terms the tenant overrides
        // JSON array of the verdict events its endpoints are sent; null: the default (all).
        // A column of its own: the webhook outbox matches it in SQL (webhooks.ts).
        t.text("webhook_events");
        t.integer("version").notNullable();
        t.bigInteger("updated_at").notNullable();
        t.string("updated_by", 32); // admin user id
      });
      await knex.schema.alterTable("uploads", (t) => {
        t.text("policy"); // JSON: the PolicyTerms in force at create; null before this migration
        t.integer("policy_version");
        t.string("policy_digest", 64);
        t.string("policy_checks_digest", 64);
        t.integer("quarantine_retention_days");
      });
    },
    async down(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.dropColumn("quarantine_retention_days");
        t.dropColumn("policy_checks_digest");
        t.dropColumn("policy_digest");
        t.dropColumn("policy_version");
        t.dropColumn("policy");
      });
      await knex.schema.dropTable("tenant_policies");
    },
  },
  {
    // Rescans after signature updates (@intake/pipeline rescan.ts): one row per run (what
    // started it, which uploads it covers, the signature version it scans with, where its
    // walk of verified uploads has got to) and one per upload it queued, whose outcome makes
    // a restarted or repeated run skip what is done. dedupe_key: one automatic run per
    // signature version, however many rescan workers see the change.
    name: "0010_rescan_runs",
    async up(knex) {
      await knex.schema.createTable("rescan_runs", (t) => {
        t.string("id", 40).primary();
        t.string("trigger", 16).notNullable(); // signatures | operator
        t.string("dedupe_key", 600).unique();
        t.string("signature_version", 512).notNullable();
        t.string("tenant_id", 64);
        t.bigInteger("verified_from").notNullable();
        t.bigInteger("verified_to");
        t.string("started_by", 64); // admin user id for an operator's run
        t.string("status", 16).notNullable(); // running | finished | cancelled
        t.string("walk", 16).notNullable(); // walking | catch_up | planned
        t.bigInteger("cursor_finished_at");
        t.string("cursor_id", 64);
        t.integer("pages").notNullable().defaultTo(0);
        t.bigInteger("started_at").notNullable();
        t.bigInteger("finished_at");
        t.bigInteger("updated_at").notNullable();
        t.index(["status", "started_at"]);
      });
      await knex.schema.createTable("rescan_items", (t) => {
        t.string("run_id", 40).notNullable().references("rescan_runs.id");
        t.string("upload_id", 64).notNullable();
        t.string("outcome", 16).notNullable(); // queued | clean | quarantined | skipped | failed
        t.bigInteger("bytes");
        t.string("signature", 512);
        t.text("detail");
        t.bigInteger("queued_at").notNullable();
        t.bigInteger("scanned_at");
        t.primary(["run_id", "upload_id"]);
        t.index(["run_id", "outcome"]);
        t.index(["upload_id"]);
      });
    },
    async down(knex) {
      await knex.schema.dropTable("rescan_items");
      await knex.schema.dropTable("rescan_runs");
    },
  },  {
    // The verdict cache (@intake/domain verdict-cache.ts, packages/db/src/verdict-cache.ts):
    // clamd's answer for a sha256 the pipeline computed itself, written in the unit of an
    // upload's final transition, and reused for the same bytes under the same signature
    // version and scan context (the policy's checked terms and clamd's limits). On the upload:
    // the scan context its scan ran under and, for a hit, the upload whose verdict it reused.
    name: "0011_verdict_cache",
    async up(knex) {
      await knex.schema.createTable("verdict_cache", (t) => {
        t.string("sha256", 64).notNullable();
        t.string("outcome", 16).notNullable(); // clean | malware
        t.string("tenant_id", 64).notNullable(); // whose upload made it (a clean entry's scope)
        t.string("signature_version", 512).notNullable();
        t.string("scan_context", 64).notNullable();
        t.string("signature", 512); // malware: clamd's signature name
        t.string("source_upload_id", 64).notNullable();
        t.bigInteger("recorded_at").notNullable();
        t.primary(["sha256", "outcome", "tenant_id", "signature_version", "scan_context"]);
        t.index(["recorded_at"]);
        t.index(["signature_version"]);
      });
      await knex.schema.alterTable("uploads", (t) => {
        t.string("scan_context", 64);
        t.string("verdict_from_cache", 64); // the upload whose verdict was reused; null: scanned
      });
    },
    async down(knex) {
      await knex.schema.alterTable("uploads", (t) => {
        t.dropColumn("verdict_from_cache");
        t.dropColumn("scan_context");
      });
      await knex.schema.dropTable("verdict_cache");
    },
  },
  {
    // Webhook secret rotation with an overlap (packages/webhooks signing.ts): the secret a
    // rotation replaced keeps signing beside the new one until previous_secret_expires_at, so
    // a receiver can deploy the new secret while deliveries still verify with the old.
    name: "0012_webhook_secret_overlap",
    async up(knex) {
      await knex.schema.alterTable("webhook_endpoints", (t) => {
        t.string("previous_secret", 128); // null: no overlap
        t.bigInteger("previous_secret_expires_at");
      });
    },
    async down(knex) {
      await knex.schema.alterTable("webhook_endpoints", (t) => {
        t.dropColumn("previous_secret_expires_at");
        t.dropColumn("previous_secret");
      });
    },
  },
];

/**
 * The audit trail is append-only in the database itself, not only by the code's habit: an
 * UPDATE, DELETE (or, on PostgreSQL, TRUNCATE) of audit_events fails whoever sends it. The
 * hash chain still shows what someone who can drop the trigger changed; the trigger keeps a
 * bug or a careless maintenance query from changing it at all.
 */
export async function refuseAuditEdits(knex: Knex): Promise<void> {
  if (isPostgres(knex)) {
    await knex.raw(`create function intake_audit_append_only() returns trigger language plpgsql as $$
      begin raise exception 'audit_events is append-only: % refused', tg_op using errcode = 'insufficient_privilege'; end $$`);
    await knex.raw(`create trigger audit_events_append_only before update or delete on audit_events for each row execute function intake_audit_append_only()`);
    await knex.raw(`create trigger audit_events_no_truncate before truncate on audit_events for each statement execute function intake_audit_append_only()`);
    return;
  }
  await knex.raw(`create trigger audit_events_no_update before update on audit_events begin select raise(abort, 'audit_events is append-only: UPDATE refused'); end`);
  await knex.raw(`create trigger audit_events_no_delete before delete on audit_events begin select raise(abort, 'audit_events is append-only: DELETE refused'); end`);
}

export async function allowAuditEdits(knex: Knex): Promise<void> {
  if (isPostgres(knex)) {
    await knex.raw("drop trigger if exists audit_events_append_only on audit_events");
    await knex.raw("drop trigger if exists audit_events_no_truncate on audit_events");
    await knex.raw("drop function if exists intake_audit_append_only()");
    return;
  }
  await knex.raw("drop trigger if exists audit_events_no_update");
  await knex.raw("drop trigger if exists audit_events_no_delete");
}

function isPostgres(knex: Knex): boolean {
  return (knex.client as { config?: { client?: string } }).config?.client === "pg";
}

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => migrations,
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};
