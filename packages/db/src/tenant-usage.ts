import type { Knex } from "knex";
import { LimitExceededError, quotaBreach, utcDay, type TenantQuotas, type TenantUsage } from "@intake/domain";
import { Statement, type Atomic } from "./connection.ts";

/**
 * The counters behind the per-tenant quotas (table tenant_usage, one row per tenant). They
 * change only inside the atomic unit that creates an upload or moves one to a terminal
 * status, so they cannot drift from the rows they count.
 *
 * The check at create is one conditional UPDATE: it adds the upload only where every quota
 * still holds. On PostgreSQL the row lock it takes serialises the tenant's concurrent
 * creates (the second waits for the first to commit, then re-evaluates the WHERE on the new
 * row), so two creates cannot both take the last place; on SQLite every unit runs under the
 * one write lock anyway. It runs last in its unit, so the lock is held only until the commit.
 */
const CLAIM = `update "tenant_usage" set "pending_uploads" = "pending_uploads" + 1, "pending_bytes" = "pending_bytes" + ?, "day_uploads" = case when "day" >= ? then "day_uploads" + 1 else 1 end, "day" = case when "day" > ? then "day" else ? end where "tenant_id" = ? and "pending_uploads" < ? and "pending_bytes" + ? <= ? and ("day" < ? or "day_uploads" < ?)`;

export async function claimQuota(db: Knex, tx: Atomic, tenantId: string, size: number, quotas: TenantQuotas, now: Date): Promise<void> {
  const day = utcDay(now);
  // One statement of fixed text rather than the query builder: knex compiled the builder on
  // every create (the API's hottest path), which cost more than SQLite running it.
  // The day only moves forward: an API process whose clock is a few seconds behind another's
  // at midnight counts into the day the other one opened (it used to reset it to its own, and
  // back again, on every create while they disagreed). Every right-hand side of the SET sees
  // the row as it was, so `day` there is the old day.
  const claim = () => tx.run(new Statement(CLAIM, [size, day, day, day, tenantId, quotas.pendingUploads, size, quotas.pendingBytes, day, quotas.uploadsPerDay]));
  // A refused claim is either a quota (named from the row) or a row that was not there when
  // the UPDATE ran: a tenant's first upload (tenants created after migration 0004 get their
  // row here), or, on PostgreSQL, one that a concurrent first create committed meanwhile.
  for (let attempt = 0; attempt < 3; attempt++) {
    if ((await claim()) === 1) return;
    const usage = await readUsage(db, tx, tenantId);
    if (!usage) {
      await tx.run(db("tenant_usage").insert({ tenant_id: tenantId, pending_uploads: 0, pending_bytes: 0, day, day_uploads: 0 }).onConflict("tenant_id").ignore());
      continue;
    }
    const breach = quotaBreach(usage, size, quotas, now);
    if (breach) throw breach;
  }
  throw new LimitExceededError("quota_busy", "the tenant's quotas could not be checked; retry the request", { tenantId }, 1);
}

/** An upload reached a terminal status: its place and its bytes are free again. */
const RELEASE = "update tenant_usage set pending_uploads = case when pending_uploads > 0 then pending_uploads - 1 else 0 end, pending_bytes = case when pending_bytes > ? then pending_bytes - ? else 0 end where tenant_id = ?";

export async function releaseQuota(tx: Atomic, tenantId: string, size: number): Promise<void> {
  // Clamped at zero: rows written before the counters existed must not drive them negative.
  await tx.run(new Statement(RELEASE, [size, size, tenantId]));
}

/**
 * A size-unknown upload arrived: the part of its reservation beyond its real size goes back
 * (upload-repository.ts settle), in the arrival's unit. Its place stays taken until its verdict.
 */
const RETURN_BYTES = "update tenant_usage set pending_bytes = case when pending_bytes > ? then pending_bytes - ? else 0 end where tenant_id = ?";

export async function returnPendingBytes(tx: Atomic, tenantId: string, bytes: number): Promise<void> {
  await tx.run(new Statement(RETURN_BYTES, [bytes, bytes, tenantId]));
}

async function readUsage(db: Knex, tx: Atomic, tenantId: string): Promise<TenantUsage | null> {
  const row = await tx.first<Record<string, unknown>>(db("tenant_usage").where({ tenant_id: tenantId }));
  if (!row) return null;
  return { pendingUploads: Number(row.pending_uploads), pendingBytes: Number(row.pending_bytes), day: Number(row.day), uploadsToday: Number(row.day_uploads) };
}

/** A tenant's counters, for tests and operators. */
export async function tenantUsage(db: Knex, tenantId: string): Promise<TenantUsage | null> {
  const row = await db("tenant_usage").where({ tenant_id: tenantId }).first();
  return row ? { pendingUploads: Number(row.pending_uploads), pendingBytes: Number(row.pending_bytes), day: Number(row.day), uploadsToday: Number(row.day_uploads) } : null;
}
