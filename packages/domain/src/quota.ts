import { LimitExceededError } from "./errors.ts";

/**
 * Per-tenant quotas. "Open" uploads are the ones not yet in a terminal status (verified,
 * quarantined, expired, aborted): declared, uploading or in the pipeline. They hold a URL,
 * storage under pending/ and a place in the scan queue, which is what the quotas bound.
 * The daily count is per UTC calendar day, so its window and Retry-After are the same on
 * every API process.
 */
export interface TenantQuotas {
  pendingUploads: number;
  pendingBytes: number;
  uploadsPerDay: number;
}

/** What a tenant holds now (the counters kept with its uploads). */
export interface TenantUsage {
  pendingUploads: number;
  pendingBytes: number;
  /** The UTC day (days since the epoch) `uploadsToday` counts. */
  day: number;
  uploadsToday: number;
}

const DAY_MS = 86_400_000;

export function utcDay(now: Date): number {
  return Math.floor(now.getTime() / DAY_MS);
}

/**
 * The quota one more upload of `size` bytes would break, as the error to answer with, or
 * null. The database applies the same rule atomically (one conditional update); this names
 * the quota once that update refused.
 */
export function quotaBreach(usage: TenantUsage, size: number, quotas: TenantQuotas, now: Date): LimitExceededError | null {
  if (usage.pendingUploads + 1 > quotas.pendingUploads) {
    return new LimitExceededError(
      "quota_pending_uploads",
      `the tenant already has ${usage.pendingUploads} open uploads; the quota of open uploads is ${quotas.pendingUploads}. Complete or abort some first`,
      { quota: "pendingUploads", limit: quotas.pendingUploads, current: usage.pendingUploads },
    );
  }
  if (usage.pendingBytes + size > quotas.pendingBytes) {
    return new LimitExceededError(
      "quota_pending_bytes",
      `declaring ${size} more bytes would exceed the quota of ${quotas.pendingBytes} bytes in open uploads (${usage.pendingBytes} are open)`,
      { quota: "pendingBytes", limit: quotas.pendingBytes, current: usage.pendingBytes, requested: size },
    );
  }
  // A day ahead of this clock is one another API process opened already (clocks differ by
  // seconds): it counts, and it resets when that day ends.
  const today = Math.max(utcDay(now), usage.day);
  const used = usage.day === today ? usage.uploadsToday : 0;
  if (used + 1 > quotas.uploadsPerDay) {
    const nextDay = (today + 1) * DAY_MS;
    return new LimitExceededError(
      "quota_uploads_per_day",
      `the quota of ${quotas.uploadsPerDay} uploads per day (UTC) is used up; it resets at ${new Date(nextDay).toISOString()}`,
      { quota: "uploadsPerDay", limit: quotas.uploadsPerDay, current: used, resetsAt: new Date(nextDay).toISOString() },
      (nextDay - now.getTime()) / 1000,
    );
  }
  return null;
}
