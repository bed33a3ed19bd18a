import { randomBytes } from "node:crypto";
import type { Knex } from "knex";
import { RESCAN_MOVING_STATUSES, type UploadStatus } from "@intake/domain";
import { AuditLog } from "./audit-log.ts";
import { atomically, Statement } from "./connection.ts";
import { isUniqueViolation } from "./upload-repository.ts";

/**
 * Rescan runs after signature updates (migration 0010; the pipeline's rescan.ts drives them).
 * A run walks verified uploads cleared by another signature version than its own, newest
 * verdict first, in keyset pages on (finished_at, id); each page's items and the cursor past
 * it commit together, so a restarted planner goes on from the cursor and never re-plans a
 * page. Each item's outcome is set once (a conditional update from `queued`): a repeated job
 * or a restarted worker finds it done and does not scan again, and the counts stay exact.
 */
export type RescanTrigger = "signatures" | "operator";
export type RescanRunStatus = "running" | "finished" | "cancelled";
/** walking: paging through the covered uploads; catch_up: one last look for verdicts made with the old signatures after the run began; planned: every item queued. */
export type RescanWalk = "walking" | "catch_up" | "planned";
export type RescanOutcome = "queued" | "clean" | "quarantined" | "skipped" | "failed";
export const RESCAN_OUTCOMES: readonly RescanOutcome[] = ["queued", "clean", "quarantined", "skipped", "failed"];

export interface RescanRun {
  id: string;
  trigger: RescanTrigger;
  signatureVersion: string;
  tenantId: string | null;
  verifiedFrom: Date;
  verifiedTo: Date | null;
  startedBy: string | null;
  status: RescanRunStatus;
  walk: RescanWalk;
  cursor: { finishedAt: number; id: string } | null;
  pages: number;
  startedAt: Date;
  finishedAt: Date | null;
}

export interface NewRescanRun {
  trigger: RescanTrigger;
  signatureVersion: string;
  tenantId?: string | null;
  verifiedFrom: Date;
  verifiedTo?: Date | null;
  startedBy?: string | null;
  /** One run per key (an automatic run's signature version): a second create returns the first. */
  dedupeKey?: string;
  /** Where an operator's run was started: the admin surfaces (default) or the command line. */
  via?: "admin" | "cli";
}

export interface RescanCandidate {
  id: string;
  tenantId: string;
  finishedAt: number;
  bytes: number;
}

export interface RescanProgress {
  run: RescanRun;
  counts: Record<RescanOutcome, number>;
  /** Bytes of the items scanned so far. */
  bytesScanned: number;
  /** Covered uploads the walk has not reached yet (an estimate: verdicts change meanwhile). */
  unplanned: number;
  /** queued + unplanned. */
  remaining: number;
  /** Items finished per second since the run started (null before the first). */
  ratePerSecond: number | null;
  /** When the remaining ones are done at that rate (null when unknown or done). */
  eta: Date | null;
}

export class RescanRunRepository {
  private readonly db: Knex;
  private readonly audit: AuditLog;
  constructor(db: Knex) {
    this.db = db;
    this.audit = new AuditLog(db);
  }

  /**
   * A new run (an operator's is audited with who started it, in the same unit). With a
   * dedupe key already used, the existing run and created: false.
   */
  async create(input: NewRescanRun, now = new Date()): Promise<{ run: RescanRun; created: boolean }> {
    const id = `rsc_${randomBytes(12).toString("base64url")}`;
    const ts = now.getTime();
    const row = {
      id,
      trigger: input.trigger,
      dedupe_key: input.dedupeKey ?? null,
      signature_version: input.signatureVersion,
      tenant_id: input.tenantId ?? null,
      verified_from: input.verifiedFrom.getTime(),
      verified_to: input.verifiedTo ? input.verifiedTo.getTime() : null,
      started_by: input.startedBy ?? null,
      status: "running" satisfies RescanRunStatus,
      walk: "walking" satisfies RescanWalk,
      cursor_finished_at: null,
      cursor_id: null,
      pages: 0,
      started_at: ts,
      finished_at: null,
      updated_at: ts,
    };
    try {
      await atomically(this.db, async (tx) => {
        await tx.run(this.db("rescan_runs").insert(row));
        await this.audit.append(
          tx,
          {
            actor: input.trigger === "operator" ? (input.via ?? "admin") : "rescan",
            actorId: input.startedBy ?? null,
            action: "rescan.started",
            tenantId: input.tenantId ?? null,
            detail: { runId: id, trigger: input.trigger, signatureVersion: input.signatureVersion, verifiedFrom: input.verifiedFrom.toISOString(), verifiedTo: input.verifiedTo?.toISOString() ?? null },
          },
          now,
        );
      });
    } catch (err) {
      if (input.dedupeKey && isUniqueViolation(err)) {
        const existing = await this.db("rescan_runs").where({ dedupe_key: input.dedupeKey }).first();
        if (existing) return { run: toRun(existing), created: false };
      }
      throw err;
    }
    return { run: toRun(row), created: true };
  }

  /**
   * An operator's run started from the API (which does not read clamd's rule set) names no
   * signature version; the first rescan worker to plan it pins its own, once.
   */
  async pinVersion(runId: string, version: string, now = new Date()): Promise<void> {
    await this.db("rescan_runs").where({ id: runId, signature_version: UNPINNED }).update({ signature_version: version, updated_at: now.getTime() });
  }

  async get(id: string): Promise<RescanRun | null> {
    const row = await this.db("rescan_runs").where({ id }).first();
    return row ? toRun(row) : null;
  }

  /** Runs still going, oldest first. */
  async running(): Promise<RescanRun[]> {
    return (await this.db("rescan_runs").where({ status: "running" }).orderBy([{ column: "started_at" }, { column: "id" }])).map(toRun);
  }

  /** The newest runs, newest first. */
  async recent(limit = 20): Promise<RescanRun[]> {
    return (await this.db("rescan_runs").orderBy([{ column: "started_at", order: "desc" }, { column: "id", order: "desc" }]).limit(limit)).map(toRun);
  }

  /** The newest automatic run (the signature version the rescans last started for). */
  async latestAutomatic(): Promise<RescanRun | null> {
    const row = await this.db("rescan_runs").where({ trigger: "signatures" }).orderBy([{ column: "started_at", order: "desc" }, { column: "id", order: "desc" }]).first();
    return row ? toRun(row) : null;
  }

  /**
   * The next page of the walk: verified uploads the run covers (its tenant, its verdict
   * dates), cleared by another signature version than the run's, past the cursor, newest
   * verdict first. In catch-up, those verified since the run began that it has no item for.
   */
  async nextPage(run: RescanRun, limit: number): Promise<RescanCandidate[]> {
    const q = this.covered(run).select("id", "tenant_id", "finished_at", "stored_size", "served_size", "declared_size");
    if (run.walk === "catch_up") {
      q.andWhere("finished_at", ">=", run.startedAt.getTime() - CATCH_UP_MARGIN_MS).whereNotExists(this.db("rescan_items").select(this.db.raw("1")).where("run_id", run.id).andWhereRaw("rescan_items.upload_id = uploads.id"));
    } else if (run.cursor) {
      const { finishedAt, id } = run.cursor;
      q.andWhere((w) => w.where("finished_at", "<", finishedAt).orWhere((w2) => w2.where("finished_at", "=", finishedAt).andWhere("id", "<", id)));
    }
    const rows = await q.orderBy([{ column: "finished_at", order: "desc" }, { column: "id", order: "desc" }]).limit(limit);
    return rows.map((r: Record<string, any>) => ({ id: r.id, tenantId: r.tenant_id, finishedAt: Number(r.finished_at), bytes: Number(r.served_size ?? r.stored_size ?? r.declared_size ?? 0) }));
  }

  /**
   * Records a planned page: its items (queued) and the walk's new position, in one unit,
   * only if the run is still where `run` says it is (a second planner racing on the same run
   * plans nothing). Returns false when another planner moved it first.
   */
  async recordPage(run: RescanRun, items: readonly RescanCandidate[], next: Pick<RescanRun, "walk" | "cursor">, now = new Date()): Promise<boolean> {
    const ts = now.getTime();
    return atomically(this.db, async (tx) => {
      const moved = await tx.run(
        new Statement(
          `update rescan_runs set walk = ?, cursor_finished_at = ?, cursor_id = ?, pages = pages + 1, updated_at = ? where id = ? and status = 'running' and pages = ?`,
          [next.walk, next.cursor?.finishedAt ?? null, next.cursor?.id ?? null, ts, run.id, run.pages],
        ),
      );
      if (moved !== 1) return false;
      for (const item of items) {
        await tx.run(new Statement(`insert into rescan_items (run_id, upload_id, outcome, bytes, queued_at) values (?, ?, 'queued', ?, cast(? as bigint)) on conflict do nothing`, [run.id, item.id, item.bytes, ts]));
      }
      return true;
    });
  }

  /** Items still to do, for queueing again (after a lost Redis, or a restart). */
  async queuedItems(runId: string, limit = 1000, after?: string): Promise<string[]> {
    const q = this.db("rescan_items").where({ run_id: runId, outcome: "queued" });
    if (after) q.andWhere("upload_id", ">", after);
    return (await q.orderBy("upload_id").limit(limit).pluck("upload_id")) as string[];
  }

  /** Whether any verified upload since `from` was cleared by another signature version than `version`. */
  async anyClearedByOther(version: string, from: Date): Promise<boolean> {
    const row = await this.db("uploads")
      .where({ status: "verified" satisfies UploadStatus })
      .andWhere("finished_at", ">=", from.getTime())
      .andWhere((w) => w.whereNull("scanner_version").orWhereNot("scanner_version", version))
      .first("id");
    return Boolean(row);
  }

  async itemOutcome(runId: string, uploadId: string): Promise<RescanOutcome | null> {
    const row = await this.db("rescan_items").where({ run_id: runId, upload_id: uploadId }).first("outcome");
    return row ? (row.outcome as RescanOutcome) : null;
  }

  /** Sets an item's outcome once; false when it was already set (a repeated job). */
  async finishItem(runId: string, uploadId: string, outcome: Exclude<RescanOutcome, "queued">, o: { bytes?: number; signature?: string | null; detail?: string | null } = {}, now = new Date()): Promise<boolean> {
    const n = await this.db("rescan_items")
      .where({ run_id: runId, upload_id: uploadId, outcome: "queued" })
      .update({ outcome, scanned_at: now.getTime(), ...(o.bytes !== undefined ? { bytes: o.bytes } : {}), signature: o.signature ?? null, detail: o.detail?.slice(0, 2000) ?? null });
    return n === 1;
  }

  /** Ends a run whose walk is planned and whose items are all done; false when not yet. */
  async finishIfDone(runId: string, now = new Date()): Promise<boolean> {
    const open = await this.db("rescan_items").where({ run_id: runId, outcome: "queued" }).first("upload_id");
    if (open) return false;
    const n = await this.db("rescan_runs").where({ id: runId, status: "running", walk: "planned" }).update({ status: "finished", finished_at: now.getTime(), updated_at: now.getTime() });
    if (n === 1) await this.audit.record({ actor: "rescan", action: "rescan.finished", detail: { runId, ...(await this.counts(runId)) } }, now);
    return n === 1;
  }

  /** An operator stops a run: nothing more is planned; queued items are skipped when their job runs. */
  async cancel(runId: string, by: { actorId: string }, now = new Date()): Promise<boolean> {
    const n = await this.db("rescan_runs").where({ id: runId, status: "running" }).update({ status: "cancelled", finished_at: now.getTime(), updated_at: now.getTime() });
    if (n === 1) await this.audit.record({ actor: "admin", actorId: by.actorId, action: "rescan.cancelled", detail: { runId } }, now);
    return n === 1;
  }

  async counts(runId: string): Promise<Record<RescanOutcome, number>> {
    const rows = (await this.db("rescan_items").where({ run_id: runId }).groupBy("outcome").select("outcome").count({ n: "*" })) as { outcome: RescanOutcome; n: number | string }[];
    const counts = Object.fromEntries(RESCAN_OUTCOMES.map((o) => [o, 0])) as Record<RescanOutcome, number>;
    for (const r of rows) counts[r.outcome] = Number(r.n);
    return counts;
  }

  async progress(run: RescanRun, now = new Date()): Promise<RescanProgress> {
    const counts = await this.counts(run.id);
    const bytes = (await this.db("rescan_items").where({ run_id: run.id }).whereNot({ outcome: "queued" }).sum({ b: "bytes" }).first()) as { b: number | string | null } | undefined;
    let unplanned = 0;
    if (run.status === "running" && run.walk === "walking") {
      const q = this.covered(run);
      if (run.cursor) {
        const { finishedAt, id } = run.cursor;
        q.andWhere((w) => w.where("finished_at", "<", finishedAt).orWhere((w2) => w2.where("finished_at", "=", finishedAt).andWhere("id", "<", id)));
      }
      unplanned = Number(((await q.count({ n: "*" }).first()) as { n: number | string } | undefined)?.n ?? 0);
    }
    const done = counts.clean + counts.quarantined + counts.skipped + counts.failed;
    const remaining = run.status === "running" ? counts.queued + unplanned : 0;
    const elapsed = ((run.finishedAt ?? now).getTime() - run.startedAt.getTime()) / 1000;
    const ratePerSecond = done > 0 && elapsed > 0 ? done / elapsed : null;
    const eta = ratePerSecond && remaining > 0 ? new Date(now.getTime() + (remaining / ratePerSecond) * 1000) : null;
    return { run, counts, bytesScanned: Number(bytes?.b ?? 0), unplanned, remaining, ratePerSecond, eta };
  }

  /** Uploads matched on rescan whose move to quarantine/ has not finished (a lost job, a crash). */
  async movingUploads(olderThan: Date, limit = 100): Promise<string[]> {
    return (await this.db("uploads").whereIn("status", RESCAN_MOVING_STATUSES as UploadStatus[]).andWhere("updated_at", "<", olderThan.getTime()).orderBy("updated_at").limit(limit).pluck("id")) as string[];
  }

  private covered(run: RescanRun): Knex.QueryBuilder {
    const q = this.db("uploads")
      .where({ status: "verified" satisfies UploadStatus })
      .andWhere("finished_at", ">=", run.verifiedFrom.getTime())
      .andWhere((w) => w.whereNull("scanner_version").orWhereNot("scanner_version", run.signatureVersion));
    if (run.verifiedTo) q.andWhere("finished_at", "<", run.verifiedTo.getTime());
    if (run.tenantId) q.andWhere({ tenant_id: run.tenantId });
    return q;
  }
}

/**
 * A verdict made with the old signatures can land after the run began: a scan that started
 * before the change, or a worker whose reading of clamd's version is not renewed yet (at most
 * SIGNATURE_CHECK_SECONDS old). The catch-up looks that far back and further.
 */
const CATCH_UP_MARGIN_MS = 3600_000;

/** The signature version of a run no rescan worker has planned yet (pinVersion). */
export const UNPINNED = "";

function toRun(r: Record<string, any>): RescanRun {
  return {
    id: r.id,
    trigger: r.trigger,
    signatureVersion: r.signature_version,
    tenantId: r.tenant_id ?? null,
    verifiedFrom: new Date(Number(r.verified_from)),
    verifiedTo: r.verified_to === null || r.verified_to === undefined ? null : new Date(Number(r.verified_to)),
    startedBy: r.started_by ?? null,
    status: r.status,
    walk: r.walk,
    cursor: r.cursor_id ? { finishedAt: Number(r.cursor_finished_at), id: r.cursor_id } : null,
    pages: Number(r.pages),
    startedAt: new Date(Number(r.started_at)),
    finishedAt: r.finished_at === null || r.finished_at === undefined ? null : new Date(Number(r.finished_at)),
  };
}
