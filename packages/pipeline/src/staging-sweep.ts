import { isTerminal, PREFIX, type Upload } from "@intake/domain";
import type { ListedObject, ObjectStore } from "@intake/storage";
import type { PipelineLogger, UploadStore } from "./deps.ts";
import { parseStagingKey } from "./finalize-decision.ts";

/**
 * The reaper's sweep of staging copies (finalize-decision.ts stagingKey:
 * quarantine/{tenant}/{id}.promoting-{run}). A run removes its own copy once it has copied it
 * on or given it up; a process killed in between (SIGKILL, an OOM, a lost host) leaves it,
 * never served but stored and billed, and nothing else would ever delete it. No S3 lifecycle
 * rule can find them either (a prefix filter cannot match a suffix: infra/aws
 * upload-bucket.ts says why there is no tag rule instead).
 *
 * What may go, and why it is safe:
 * - Only keys parseStagingKey accepts: never a final quarantine/{tenant}/{id}, nor any key
 *   that merely contains ".promoting-".
 * - Only copies at least `minAgeSeconds` old (config STAGING_SWEEP_AFTER_SECONDS, by default
 *   twice STUCK_AFTER_SECONDS and at least an hour). A copy lives as long as its run: a
 *   streamed scan's pass (its multipart upload starts the copy, and AWS S3 dates a completed
 *   multipart object from that start) or finalize's copy, read-back and second copy. Every
 *   attempt (JOB_ATTEMPTS) stages under a fresh key, so retries never extend one copy's life.
 *   The pipeline's own bound on a live step without progress is STUCK_AFTER_SECONDS (above
 *   CLAMD_TIMEOUT_MS; a longer scan keeps touching its row), and BullMQ's lock hands a dead
 *   worker's job on well within it.
 * - Only copies of an upload that is final (verified, quarantined, expired, aborted) or has
 *   no row, and whose final object is in place: the upload's own bytes are elsewhere. The
 *   pipeline never deletes the source (pending/, or quarantine/ for a release) before the
 *   final copy exists, so a staging copy is never the only copy of an upload in progress;
 *   the sweep still leaves every copy of an upload not final alone (a run may be using it),
 *   until `backstopSeconds` (7 days), past which any staging copy goes.
 * Pulling a copy from under a run that is still going (a duplicate that lost the verdict
 * race) costs that run an error and a retry, never a promotion: every use of a staging copy
 * (copy on, read back, strip) fails when it is gone, and its upload's verdict is final already.
 *
 * Bounded work: at most `pagesPerPass` pages of `pageSize` keys per pass, going on in the
 * next pass after the last key seen (a keyset walk: ListObjectsV2 StartAfter between passes,
 * the continuation token within one), from the start again once it reached the end. The
 * cursor is this process's: another replica's passes walk on their own, and deleting twice
 * is harmless. No audit row: a staging copy is not evidence of anything (the bytes judged
 * are the upload's own object, whose record stands); a log line and the reaper's
 * `staging_swept` count say what went.
 */
export interface StagingSweepSettings {
  minAgeSeconds: number;
  backstopSeconds: number;
  pageSize?: number;
  pagesPerPass?: number;
}

/** Past this any staging copy goes, whatever its upload's status: no run holds one for days. */
export const STAGING_BACKSTOP_SECONDS = 7 * 24 * 3600;

export type StagingFate =
  | { sweep: true; why: "final" | "no_upload" | "backstop" }
  | { sweep: false; why: "young" | "in_progress" | "final_missing" };

/**
 * What becomes of one staging copy, from its age, its upload's row and whether the upload's
 * final object is in place (asked only for a final upload). Pure: the sweep gathers the facts.
 */
export function stagingCopyFate(copy: { tenantId: string; lastModified: Date | null }, row: Pick<Upload, "tenantId" | "status" | "finalKey"> | null, finalInPlace: boolean | undefined, now: Date, s: Pick<StagingSweepSettings, "minAgeSeconds" | "backstopSeconds">): StagingFate {
  // No date, no age: nothing proves the copy is old enough.
  if (!copy.lastModified) return { sweep: false, why: "young" };
  const ageMs = now.getTime() - copy.lastModified.getTime();
  if (ageMs < s.minAgeSeconds * 1000) return { sweep: false, why: "young" };
  if (ageMs >= s.backstopSeconds * 1000) return { sweep: true, why: "backstop" };
  // The key names the upload by tenant and id; a row of another tenant is not its upload.
  if (!row || row.tenantId !== copy.tenantId) return { sweep: true, why: "no_upload" };
  if (!isTerminal(row.status)) return { sweep: false, why: "in_progress" };
  return finalInPlace ? { sweep: true, why: "final" } : { sweep: false, why: "final_missing" };
}

export interface StagingSweepDeps {
  store: ObjectStore;
  repository: Pick<UploadStore, "getById">;
  logger: PipelineLogger;
  settings: StagingSweepSettings;
}

export interface StagingSweepPass {
  swept: number;
  /** Staging copies seen and left (young, in progress, final object missing). */
  kept: number;
  /** Keys listed this pass (every key under quarantine/, staging copies or not). */
  listed: number;
}

export class StagingSweep {
  private readonly deps: StagingSweepDeps;
  /** The last key the previous pass saw: the next pass starts after it. */
  private cursor: string | undefined;

  constructor(deps: StagingSweepDeps) {
    this.deps = deps;
  }

  async pass(now = new Date()): Promise<StagingSweepPass> {
    const { store, settings } = this.deps;
    const out: StagingSweepPass = { swept: 0, kept: 0, listed: 0 };
    let token: string | undefined;
    for (let page = 0; page < (settings.pagesPerPass ?? 5); page++) {
      const listing = await store.listObjects(`${PREFIX.quarantine}/`, { maxKeys: settings.pageSize ?? 1000, ...(token ? { continuationToken: token } : this.cursor ? { startAfter: this.cursor } : {}) });
      out.listed += listing.objects.length;
      for (const object of listing.objects) await this.consider(object, now, out);
      const last = listing.objects.at(-1);
      if (!listing.next || !last) {
        this.cursor = undefined; // the end: the next pass walks from the start
        return out;
      }
      this.cursor = last.key;
      token = listing.next;
    }
    return out;
  }

  private async consider(object: ListedObject, now: Date, out: StagingSweepPass): Promise<void> {
    const named = parseStagingKey(object.key);
    if (!named) return;
    const young = stagingCopyFate({ tenantId: named.tenantId, lastModified: object.lastModified }, null, undefined, now, this.deps.settings);
    if (young.why === "young") {
      out.kept++;
      return;
    }
    const row = await this.deps.repository.getById(named.uploadId);
    const finalInPlace = row && row.tenantId === named.tenantId && isTerminal(row.status) && row.finalKey ? await this.exists(row.finalKey) : undefined;
    const fate = stagingCopyFate({ tenantId: named.tenantId, lastModified: object.lastModified }, row, finalInPlace, now, this.deps.settings);
    if (!fate.sweep) {
      out.kept++;
      if (fate.why === "final_missing") this.deps.logger.warn({ uploadId: named.uploadId, key: object.key, status: row?.status, finalKey: row?.finalKey ?? null }, "staging copy kept: its upload is final but its final object is not in place (the backstop removes it)");
      return;
    }
    await this.deps.store.delete(object.key);
    out.swept++;
    const ageSeconds = Math.round((now.getTime() - object.lastModified!.getTime()) / 1000);
    this.deps.logger.info({ uploadId: named.uploadId, key: object.key, why: fate.why, status: row?.status ?? null, ageSeconds, size: object.size }, "staging copy swept");
  }

  /**
   * Whether the object is there, by a listing of its own key: s3:ListBucket, which the reaper
   * holds, where a HeadObject would need s3:GetObject (read access to quarantined bytes).
   * The exact key sorts first among the keys it prefixes.
   */
  private async exists(key: string): Promise<boolean> {
    const page = await this.deps.store.listObjects(key, { maxKeys: 1 });
    return page.objects[0]?.key === key;
  }
}
