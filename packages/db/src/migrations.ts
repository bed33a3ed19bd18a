import type { Knex } from "knex";

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
];

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => migrations,
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};
