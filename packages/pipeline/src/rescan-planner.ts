import { UNPINNED, type RescanCandidate, type RescanRun, type RescanRunRepository } from "@intake/db";
import type { PipelineLogger } from "./deps.ts";
import type { RescanQueue } from "./rescan-queue.ts";

/**
 * The rescan's planner (issue 12 §6): starts a run when the signature version changes (and
 * at start, for a change made while no rescan worker ran), walks each running run's
 * verified uploads in pages onto the rescan queue, and ends runs whose items are all done.
 *
 * Every step is a guarded write (a run's dedupe key, the page counter its cursor moves
 * with, each item's outcome set once), so any number of rescan workers may tick at once and
 * a restarted one goes on where the database says: no page is planned twice, no item
 * scanned twice. The queue is filled a page at a time, only while it holds less than two
 * pages: a walk of a million uploads never sits in Redis at once.
 */
export interface RescanPlannerOptions {
  runs: RescanRunRepository;
  queue: Pick<RescanQueue, "addItems" | "addMove" | "backlog">;
  /** The signature version verdicts record now. */
  signatures: { get(): Promise<string> };
  logger: PipelineLogger;
  /** Verified uploads this many days back are rescanned after a signature update (RESCAN_WINDOW_DAYS). */
  windowDays: number;
  pageSize: number;
  /** Start a run by itself when the signature version changes (RESCAN_ON_SIGNATURE_CHANGE). */
  automatic: boolean;
  /** The catch-up waits this long after a run began: verdicts made with the old signatures may still land (the watch's ttl). */
  catchUpAfterMs: number;
  /** A move to quarantine/ that has not moved for this long is queued again. */
  moveStuckAfterMs: number;
  now?: () => Date;
}

export interface ManualRescan {
  tenantId?: string | null;
  verifiedFrom: Date;
  verifiedTo?: Date | null;
  startedBy: string;
}

export class RescanPlanner {
  private readonly o: RescanPlannerOptions;
  private ticking: Promise<void> | null = null;
  /** Queued items are added again once per process (a Redis that lost its jobs, a restart). */
  private readonly requeued = new Set<string>();
  /** The signature version for which no automatic run is needed (checked once per version). */
  private settled: string | null = null;
  constructor(o: RescanPlannerOptions) {
    this.o = o;
  }

  /** One pass (the role's timer, the signature watch's change, a test). Concurrent calls share one. */
  tick(): Promise<void> {
    this.ticking ??= this.pass().finally(() => (this.ticking = null));
    return this.ticking;
  }

  /** Resolves once a pass in progress (if any) has ended. */
  async idle(): Promise<void> {
    await this.ticking?.catch(() => undefined);
  }

  /** An operator's run: a tenant and/or a verdict date range, with today's signatures. */
  async startManual(m: ManualRescan): Promise<RescanRun> {
    const version = await this.o.signatures.get();
    const { run } = await this.o.runs.create({ trigger: "operator", signatureVersion: version, tenantId: m.tenantId ?? null, verifiedFrom: m.verifiedFrom, verifiedTo: m.verifiedTo ?? null, startedBy: m.startedBy }, this.now());
    this.o.logger.info({ runId: run.id, tenantId: run.tenantId, from: run.verifiedFrom, to: run.verifiedTo, by: m.startedBy }, "rescan started by an operator");
    return run;
  }

  private async pass(): Promise<void> {
    if (this.o.automatic) await this.startAutomatic();
    for (const run of await this.o.runs.running()) await this.advance(run);
    const stuck = await this.o.runs.movingUploads(new Date(this.now().getTime() - this.o.moveStuckAfterMs));
    for (const id of stuck) await this.o.queue.addMove(id);
  }

  /** One automatic run per signature version (its dedupe key), whichever worker sees it first. */
  private async startAutomatic(): Promise<void> {
    const version = await this.o.signatures.get();
    if (this.settled === version) return;
    const latest = await this.o.runs.latestAutomatic();
    if (latest?.signatureVersion === version) {
      this.settled = version;
      return;
    }
    const from = new Date(this.now().getTime() - this.o.windowDays * 86_400_000);
    // Nothing cleared by other signatures (a new deployment, every verdict already made with
    // these): no run, and no second look until the version changes.
    if (!(await this.o.runs.anyClearedByOther(version, from))) {
      this.settled = version;
      return;
    }
    const { run, created } = await this.o.runs.create({ trigger: "signatures", signatureVersion: version, verifiedFrom: from, dedupeKey: `signatures:${version}` }, this.now());
    if (created) this.o.logger.info({ runId: run.id, signatureVersion: version, windowDays: this.o.windowDays }, "signatures changed: rescan of verified uploads started");
  }

  private async advance(given: RescanRun): Promise<void> {
    let run = given;
    if (run.signatureVersion === UNPINNED) {
      await this.o.runs.pinVersion(run.id, await this.o.signatures.get(), this.now());
      const pinned = await this.o.runs.get(run.id);
      if (!pinned || pinned.status !== "running") return;
      run = pinned;
    }
    const backlog = await this.o.queue.backlog();
    // Items whose jobs may be gone: once per process (a restart), and whenever the queue is
    // empty (a Redis that lost its jobs, a page recorded just before a crash). Ids already
    // queued are no-ops; items already done are skipped by their job without a scan.
    if (!this.requeued.has(run.id) || backlog === 0) {
      this.requeued.add(run.id);
      let after: string | undefined;
      for (let page = await this.o.runs.queuedItems(run.id, 1000); page.length > 0; page = await this.o.runs.queuedItems(run.id, 1000, after)) {
        await this.o.queue.addItems(run.id, page);
        after = page.at(-1);
      }
    }
    if (run.walk !== "planned" && backlog < 2 * this.o.pageSize) await this.planPage(run);
    const after = await this.o.runs.get(run.id);
    if (after?.walk === "planned") await this.o.runs.finishIfDone(run.id, this.now());
  }

  private async planPage(run: RescanRun): Promise<void> {
    if (run.walk === "catch_up" && this.now().getTime() < run.startedAt.getTime() + this.o.catchUpAfterMs) return;
    const page = await this.o.runs.nextPage(run, this.o.pageSize);
    const full = page.length === this.o.pageSize;
    const last: RescanCandidate | undefined = page.at(-1);
    const next: Pick<RescanRun, "walk" | "cursor"> =
      run.walk === "walking" ? (full ? { walk: "walking", cursor: { finishedAt: last!.finishedAt, id: last!.id } } : { walk: "catch_up", cursor: run.cursor }) : { walk: full ? "catch_up" : "planned", cursor: run.cursor };
    if (!(await this.o.runs.recordPage(run, page, next, this.now()))) return; // another planner moved it first
    await this.o.queue.addItems(
      run.id,
      page.map((c) => c.id),
    );
  }

  private now(): Date {
    return (this.o.now ?? (() => new Date()))();
  }
}
