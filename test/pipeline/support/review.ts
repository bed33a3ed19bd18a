import { QuarantineReview, type AuditRecord } from "@intake/db";
import type { Upload } from "@intake/domain";
import { freePort } from "@intake/testkit";
import { createClamdScanner } from "@intake/scanner";
import type { RunningWorker } from "@intake/worker";
import type { PipelineStack } from "./stack.ts";

/**
 * Quarantined uploads for the compliance actions' tests, made the way production makes
 * them: through the real pipeline. A `scan_error` quarantine needs clamd to be away for
 * every attempt: a worker whose clamd address has nothing listening (connection refused,
 * the real adapter's real failure) checks the upload until retries run out.
 */
export async function quarantinedForScanError(s: PipelineStack, bytes: Buffer, contentType: string, filename = "file.bin"): Promise<Upload> {
  const away = await workerWithClamdAway(s);
  try {
    const { id } = await s.upload(bytes, { contentType, filename, complete: !s.storage.events });
    const upload = await s.waitFor(id, ["quarantined", "verified"]);
    if (upload.reason !== "scan_error") throw new Error(`expected a scan_error quarantine, got ${upload.status}/${upload.reason}`);
    return upload;
  } finally {
    await away.close();
  }
}

/**
 * A worker whose clamd refuses connections (the checking roles only: the test file keeps
 * one ingest worker for its whole run, since an ingest loop stopped mid long-poll can leave
 * the next S3 event invisible in SQS for the visibility timeout).
 */
export async function workerWithClamdAway(s: PipelineStack, roles = CHECKING_ROLES): Promise<RunningWorker> {
  const scanner = createClamdScanner({ host: "127.0.0.1", port: await freePort(), connectTimeoutMs: 500 });
  return s.startWorker(roles, { scanner });
}

export const CHECKING_ROLES = "inspect,scan,finalize";

/** Quarantined by the real pipeline (a worker with the checking roles is running). */
export async function quarantined(s: PipelineStack, bytes: Buffer, contentType: string, filename = "file.bin"): Promise<Upload> {
  const { id } = await s.upload(bytes, { contentType, filename, complete: !s.storage.events });
  const upload = await s.waitFor(id, ["quarantined", "verified"]);
  if (upload.status !== "quarantined") throw new Error(`expected a quarantine, got ${upload.status}`);
  return upload;
}

export function review(s: PipelineStack): QuarantineReview {
  return new QuarantineReview(s.database.db, s.uploads);
}

export async function exists(s: PipelineStack, key: string): Promise<boolean> {
  return (await s.storage.store.head(key)) !== null;
}

export async function auditOf(s: PipelineStack, id: string, action: string): Promise<AuditRecord[]> {
  return (await s.audit.forUpload(id)).filter((r) => r.action === action);
}
