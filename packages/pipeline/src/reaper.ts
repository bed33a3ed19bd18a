import { parsePendingKey, PREFIX, type Upload } from "@intake/domain";
import { StorageUnsupportedError, type ObjectStore } from "@intake/storage";
import { stageFor } from "./decisions.ts";
import type { AuditTrail, PipelineLogger, PipelineMetrics, UploadSweeps } from "./deps.ts";
import type { StageQueues } from "./stage-queues.ts";
import type { RecheckQueue } from "./recheck-queue.ts";
import { STAGING_BACKSTOP_SECONDS, StagingSweep } from "./staging-sweep.ts";

/**
 * The reaper: what never finished gets finished or cleaned up. The database is the truth
 * and the queues are triggers, so every step starts from rows (or from storage listings)
 * and is safe to run twice or on two replicas at once: transitions are guarded, aborts and
 * deletes of things already gone succeed. The audit trail holds what happened, once: a
 * state change writes its own row in the transition (upload.expired, upload.uploaded), and
 * the reaper adds rows only for actions outside the state machine that it carried out
 * (a multipart upload aborted, a job re-queued, quarantined bytes purged). Staging copies a
 * killed run left under quarantine/ are swept by staging-sweep.ts (a log line each, no audit row).
 */
export interface ReaperSettings {
  pendingGraceSeconds: number;
  multipartTtlSeconds: number;
  stuckAfterSeconds: number;
  quarantineRetentionDays: number;
  /** How old a staging copy must be before it may be swept (STAGING_SWEEP_AFTER_SECONDS; staging-sweep.ts). */
  stagingSweepAfterSeconds: number;
  /** Past this any staging copy goes; default STAGING_BACKSTOP_SECONDS (7 days). */
  stagingBackstopSeconds?: number;
  /** Keys per listing page of the sweep (default 1000, S3's most; five pages a pass). */
  stagingPageSize?: number;
}

export interface ReaperDeps {
  repository: UploadSweeps;
  audit: AuditTrail;
  store: ObjectStore;
  queues: Pick<StageQueues, "enqueue" | "requeue">;
  /** The released uploads' recheck queue: a recheck whose job was lost is queued again. */
  rechecks?: Pick<RecheckQueue, "requeue">;
  /** As the stages route (StageDeps.onePassMaxBytes): which stage an arrived upload goes to. */
  onePassMaxBytes?: number;
  logger: PipelineLogger;
  settings: ReaperSettings;
  /** Where each pass's counts go (@intake/metrics); absent: nowhere. */
  metrics?: Pick<PipelineMetrics, "reaperPass">;
}

export interface ReapSummary {
  expired: number;
  arrivedLate: number;
  multipartAborted: number;
  orphansAborted: number;
  requeued: number;
  /** Stuck-looking uploads left alone because their job is live (waiting, delayed, active). */
  inProgress: number;
  purged: number;
  /** Staging copies a killed run left, deleted (staging-sweep.ts). */
  stagingSwept: number;
  sweep: "done" | "unsupported";
}

/**
 * A multipart upload is created in storage before its row is written (the row records the
 * storage upload id), so a young upload without a row may simply be in creation.
 */
export const ORPHAN_MULTIPART_MIN_AGE_MS = 15 * 60 * 1000;

/** Rows looked at per reaper pass for stuck uploads: bounded, the next pass goes on. */
const STUCK_PAGE_SIZE = 100;
const STUCK_PAGES_PER_PASS = 20;

export class Reaper {
  private readonly deps: ReaperDeps;
  private saidSweepUnsupported = false;
  private readonly staging: StagingSweep;
  constructor(deps: ReaperDeps) {
    this.deps = deps;
    const { stagingSweepAfterSeconds, stagingBackstopSeconds, stagingPageSize } = deps.settings;
    const backstopSeconds = Math.max(stagingBackstopSeconds ?? STAGING_BACKSTOP_SECONDS, stagingSweepAfterSeconds);
    this.staging = new StagingSweep({ store: deps.store, repository: deps.repository, logger: deps.logger, settings: { minAgeSeconds: stagingSweepAfterSeconds, backstopSeconds, ...(stagingPageSize ? { pageSize: stagingPageSize } : {}) } });
  }

  async reap(now = new Date()): Promise<ReapSummary> {
    const summary: ReapSummary = { expired: 0, arrivedLate: 0, multipartAborted: 0, orphansAborted: 0, requeued: 0, inProgress: 0, purged: 0, stagingSwept: 0, sweep: "done" };
    await this.expirePending(now, summary);
    await this.abortStaleMultipart(now, summary);
    await this.sweepMultipartUploads(now, summary);
    await this.requeueStuck(now, summary);
    await this.purgeQuarantine(now, summary);
    summary.stagingSwept = (await this.staging.pass(now)).swept;
    const acted = summary.expired + summary.arrivedLate + summary.multipartAborted + summary.orphansAborted + summary.requeued + summary.purged + summary.stagingSwept;
    if (acted > 0) this.deps.logger.info({ ...summary }, "reaper pass");
    this.deps.metrics?.reaperPass(summary);
    return summary;
  }

  /**
   * Pending uploads whose URL expired (plus grace): expired, unless the object is in fact
   * there. The status changes first and storage is cleaned up only if it did: a client's
   * complete that won the race keeps its object (and its multipart upload).
   */
  private async expirePending(now: Date, s: ReapSummary): Promise<void> {
    const { repository, store } = this.deps;
    for (const upload of await repository.findExpiredPending(now, this.deps.settings.pendingGraceSeconds * 1000)) {
      if (!upload.multipart) {
        const head = await store.head(upload.objectKey);
        if (head) {
          // The object arrived but nobody said so (a lost S3 event, a store that sends none
          // and a client that never called complete): hand it to the pipeline.
          const arrived = await repository.transition(upload.id, "arrived", "reaper", { storedSize: head.size });
          if (arrived.applied) {
            await this.deps.queues.enqueue(stageFor(arrived.upload, this.deps.onePassMaxBytes)!, upload.id);
            s.arrivedLate++;
          }
          continue;
        }
      }
      const detail = upload.multipart
        ? `URL expired at ${upload.urlExpiresAt.toISOString()} before the multipart upload was completed`
        : `URL expired at ${upload.urlExpiresAt.toISOString()}; no object arrived`;
      const expired = await repository.transition(upload.id, "expire", "reaper", { reasonDetail: detail }, now);
      if (!expired.applied) continue;
      s.expired++;
      if (upload.multipart) {
        await this.abortMultipart(upload, "the upload URL expired before the multipart upload was completed", now);
        s.multipartAborted++;
      } else {
        // A PUT racing the HeadObject above may have landed after it: nothing may keep it now.
        await store.delete(upload.objectKey);
      }
    }
  }

  /** Multipart uploads older than their time to live, aborted on the recorded storage upload id. */
  private async abortStaleMultipart(now: Date, s: ReapSummary): Promise<void> {
    const olderThan = new Date(now.getTime() - this.deps.settings.multipartTtlSeconds * 1000);
    for (const upload of await this.deps.repository.findStaleMultipart(olderThan)) {
      const expired = await this.deps.repository.transition(upload.id, "expire", "reaper", { reasonDetail: `multipart upload abandoned (older than ${this.deps.settings.multipartTtlSeconds} s)` }, now);
      if (!expired.applied) continue;
      s.expired++;
      await this.abortMultipart(upload, `multipart upload older than ${this.deps.settings.multipartTtlSeconds} s`, now);
      s.multipartAborted++;
    }
  }

  /**
   * Aborts an expired upload's multipart upload. Its row is no longer pending, so nothing
   * can complete it; should the abort fail, the sweep below finds the orphan.
   */
  private async abortMultipart(upload: Upload, reason: string, now: Date): Promise<void> {
    const storageUploadId = upload.multipart!.storageUploadId;
    await this.deps.store.abortMultipart(upload.objectKey, storageUploadId);
    await this.deps.audit.record({ actor: "reaper", action: "reaper.multipart_aborted", uploadId: upload.id, tenantId: upload.tenantId, objectKey: upload.objectKey, detail: { storageUploadId, reason } }, now);
  }

  /**
   * Multipart uploads in storage that no pending row claims (the row expired, the API died
   * between CreateMultipartUpload and the insert). Storage keeps their parts, and bills
   * them, until someone aborts them. fauxqs 2.4.1 has no ListMultipartUploads: said once.
   */
  private noSweep(s: ReapSummary): void {
    if (!this.saidSweepUnsupported) this.deps.logger.warn({}, "this storage has no ListMultipartUploads: orphaned multipart uploads cannot be swept (rows with a recorded upload id are still aborted)");
    this.saidSweepUnsupported = true;
    s.sweep = "unsupported";
  }

  private async sweepMultipartUploads(now: Date, s: ReapSummary): Promise<void> {
    if (!this.deps.store.capabilities.listsMultipartUploads) return this.noSweep(s);
    let uploads;
    try {
      uploads = await this.deps.store.listMultipartUploads(`${PREFIX.pending}/`);
    } catch (err) {
      // A store that declared the listing but lacks it: same outcome, said the same way.
      if (!(err instanceof StorageUnsupportedError)) throw err;
      return this.noSweep(s);
    }
    for (const mp of uploads) {
      if (mp.initiated && now.getTime() - mp.initiated.getTime() < ORPHAN_MULTIPART_MIN_AGE_MS) continue;
      const row = parsePendingKey(mp.key) ? await this.deps.repository.getByObjectKey(mp.key) : null;
      if (row && row.status === "pending" && row.multipart?.storageUploadId === mp.uploadId) continue;
      await this.deps.store.abortMultipart(mp.key, mp.uploadId);
      await this.deps.audit.record({ actor: "reaper", action: "reaper.orphan_multipart_aborted", uploadId: row?.id ?? null, tenantId: row?.tenantId ?? parsePendingKey(mp.key)?.tenantId ?? null, objectKey: mp.key, detail: { storageUploadId: mp.uploadId, initiated: mp.initiated?.toISOString() ?? null, rowStatus: row?.status ?? null } }, now);
      s.orphansAborted++;
    }
  }

  /**
   * Uploads the pipeline owns that have not moved for stuckAfterSeconds and whose job is
   * gone (Redis restarted or was flushed) or finished without moving them (failed for
   * good). An upload whose job is waiting, delayed or running is work in progress, however
   * long it takes (a large scan, a backlog, retries backing off): it is never re-queued.
   * The job's own state tells these apart (StageQueues.requeue) while Redis holds the job;
   * a scan whose job Redis lost mid-flight keeps its row fresh itself (scan.ts heartbeat),
   * so it never counts as stuck.
   */
  private async requeueStuck(now: Date, s: ReapSummary): Promise<void> {
    const before = new Date(now.getTime() - this.deps.settings.stuckAfterSeconds * 1000);
    for await (const upload of this.stuckSince(before)) {
      const stage = upload.status === "rechecking" ? (this.deps.rechecks ? "recheck" : null) : stageFor(upload, this.deps.onePassMaxBytes);
      if (!stage) continue;
      const requeued = stage === "recheck" ? await this.deps.rechecks!.requeue(upload.id) : await this.deps.queues.requeue(stage, upload.id);
      if (requeued === "live") {
        s.inProgress++;
        continue;
      }
      await this.deps.repository.touch(upload.id, now);
      await this.deps.repository.countAttempt(upload.id);
      await this.deps.audit.record({ actor: "reaper", action: "reaper.requeued", uploadId: upload.id, tenantId: upload.tenantId, objectKey: upload.objectKey, detail: { status: upload.status, stage, idleSince: upload.updatedAt.toISOString() } }, now);
      s.requeued++;
    }
  }

  /** Every stuck-looking row, page by page: a backlog of live jobs must not hide a lost one. */
  private async *stuckSince(before: Date): AsyncGenerator<Upload> {
    let after: { updatedAt: Date; id: string } | undefined;
    for (let page = 0; page < STUCK_PAGES_PER_PASS; page++) {
      const rows = await this.deps.repository.findStuck(before, STUCK_PAGE_SIZE, after);
      yield* rows;
      if (rows.length < STUCK_PAGE_SIZE) return;
      const last = rows.at(-1)!;
      after = { updatedAt: last.updatedAt, id: last.id };
    }
  }

  /**
   * Quarantined objects past their retention: bytes deleted, the row and its audit trail kept.
   * Each upload keeps the retention of the policy it was declared under (Upload.policy); one
   * declared before policies existed keeps the deployment's (QUARANTINE_RETENTION_DAYS).
   */
  private async purgeQuarantine(now: Date, s: ReapSummary): Promise<void> {
    // A retention a reviewer extended (retention_until) holds the bytes past the period.
    for (const upload of await this.deps.repository.findPastRetention(now, this.deps.settings.quarantineRetentionDays)) {
      if (upload.finalKey) await this.deps.store.delete(upload.finalKey);
      // Two replicas may purge the same upload: only the one whose mark applied records it.
      if (!(await this.deps.repository.markPurged(upload.id, now))) continue;
      await this.deps.audit.record({ actor: "reaper", action: "reaper.quarantine_purged", uploadId: upload.id, tenantId: upload.tenantId, objectKey: upload.finalKey, detail: { reason: upload.reason, retentionDays: upload.policy?.quarantineRetentionDays ?? this.deps.settings.quarantineRetentionDays, policyVersion: upload.policy?.version ?? null } }, now);
      s.purged++;
    }
  }
}
