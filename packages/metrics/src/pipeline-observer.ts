import type { Counter, Gauge, Histogram } from "prom-client";
import { HOLD_REASONS, RESCAN_ITEM_OUTCOMES, VERDICT_REASONS, type ReaperAction } from "./definitions.ts";

/**
 * The pipeline's hooks (packages/pipeline deps.ts PipelineMetrics), fed into prom-client.
 * Every call is a counter increment or a histogram observation: no I/O, no await, cheap
 * enough for the hot path (issue 9 measured per-upload CPU; an observe is well under a
 * microsecond).
 */
export interface FinishedUpload {
  status: string;
  reason: string | null;
  createdAt: Date;
  uploadedAt: Date | null;
  decidedAt: Date | null;
  finishedAt: Date | null;
}

/** The reaper's ReapSummary, as far as counts of actions go. */
export interface ReaperPassSummary {
  expired: number;
  arrivedLate: number;
  multipartAborted: number;
  orphansAborted: number;
  requeued: number;
  purged: number;
  stagingSwept: number;
  inProgress: number;
}

export interface PipelineObserver {
  /** An upload reached verified or quarantined (called by the run whose transition applied). */
  uploadFinished(upload: FinishedUpload): void;
  /** A released upload's recheck ended it again, verified or quarantined (the run whose transition applied). */
  recheckFinished(upload: Pick<FinishedUpload, "status" | "reason">): void;
  stageDone(stage: "inspect" | "scan" | "finalize", path: "staged" | "one_pass", ms: number): void;
  jobPicked(queue: string, waitMs: number): void;
  jobFinished(queue: string, outcome: "completed" | "retried" | "failed"): void;
  reaperPass(summary: ReaperPassSummary): void;
  storageEventReceived(lagMs: number): void;
  /** A clean result was held instead of issued (the run whose hold applied). */
  verdictHeld(reason: string): void;
  /** This worker saw clamd's signature version change. */
  signaturesChanged(): void;
  /** A verdict cache lookup before clamd. */
  verdictCacheLookup(result: "hit_clean" | "hit_malware" | "miss"): void;
  /** A rescan finished one verified upload (the run whose item outcome applied). */
  rescanItem(outcome: string, bytes: number): void;
}

export interface PipelineInstruments {
  verdicts: Counter<string>;
  rechecks: Counter<string>;
  uploadToVerdict: Histogram<string>;
  uploadToFinal: Histogram<string>;
  stageDuration: Histogram<string>;
  queueWait: Histogram<string>;
  jobs: Counter<string>;
  storageEventLag: Histogram<string>;
  reaperActions: Counter<string>;
  reaperLastPass: Gauge<string>;
  reaperInProgress: Gauge<string>;
  verdictsHeld: Counter<string>;
  signatureChanges: Counter<string>;
  verdictCacheLookups: Counter<string>;
  rescanItems?: Counter<string>;
  rescanBytes?: Counter<string>;
}

const ACTIONS: [keyof ReaperPassSummary, ReaperAction][] = [
  ["expired", "expired"],
  ["arrivedLate", "arrived_late"],
  ["multipartAborted", "multipart_aborted"],
  ["orphansAborted", "orphan_multipart_aborted"],
  ["requeued", "requeued"],
  ["purged", "purged"],
  ["stagingSwept", "staging_swept"],
];

const REASONS = new Set<string>(VERDICT_REASONS);

/** With no instruments (a process that exports no pipeline metrics) every hook does nothing. */
export function pipelineObserver(i: PipelineInstruments | null): PipelineObserver {
  if (!i) return { uploadFinished() {}, recheckFinished() {}, stageDone() {}, jobPicked() {}, jobFinished() {}, reaperPass() {}, storageEventReceived() {}, verdictHeld() {}, signaturesChanged() {}, verdictCacheLookup() {}, rescanItem() {} };
  return {
    uploadFinished(u) {
      const clean = u.status === "verified";
      if (!clean && u.status !== "quarantined") return;
      const reason = clean ? "clean" : u.reason && REASONS.has(u.reason) ? u.reason : "unknown";
      i.verdicts.inc({ reason });
      const outcome = clean ? "clean" : "quarantine";
      const arrived = (u.uploadedAt ?? u.createdAt).getTime();
      if (u.decidedAt) i.uploadToVerdict.observe({ outcome }, seconds(u.decidedAt.getTime() - arrived));
      if (u.finishedAt) i.uploadToFinal.observe({ outcome }, seconds(u.finishedAt.getTime() - arrived));
    },
    recheckFinished(u) {
      // A verified row keeps the reason it was first quarantined for: the recheck's is "clean".
      if (u.status === "verified") return void i.rechecks.inc({ outcome: "verified", reason: "clean" });
      if (u.status !== "quarantined") return;
      i.rechecks.inc({ outcome: "quarantined", reason: u.reason && REASONS.has(u.reason) ? u.reason : "unknown" });
    },
    stageDone(stage, path, ms) {
      i.stageDuration.observe({ stage, path }, seconds(ms));
    },
    jobPicked(queue, waitMs) {
      i.queueWait.observe({ queue }, seconds(waitMs));
    },
    jobFinished(queue, outcome) {
      i.jobs.inc({ queue, outcome });
    },
    reaperPass(s) {
      for (const [field, action] of ACTIONS) if (s[field] > 0) i.reaperActions.inc({ action }, s[field]);
      i.reaperInProgress.set(s.inProgress);
      i.reaperLastPass.set(Date.now() / 1000);
    },
    storageEventReceived(lagMs) {
      i.storageEventLag.observe(seconds(lagMs));
    },
    verdictHeld(reason) {
      if ((HOLD_REASONS as readonly string[]).includes(reason)) i.verdictsHeld.inc({ reason });
    },
    signaturesChanged() {
      i.signatureChanges.inc();
    },
    verdictCacheLookup(result) {
      i.verdictCacheLookups.inc({ outcome: result });
    },
    rescanItem(outcome, bytes) {
      if (!(RESCAN_ITEM_OUTCOMES as readonly string[]).includes(outcome)) return;
      i.rescanItems?.inc({ outcome });
      if (bytes > 0) i.rescanBytes?.inc(bytes);
    },
  };
}

/** Clocks of two hosts (API, workers, SQS) can disagree a little: never a negative duration. */
function seconds(ms: number): number {
  return Math.max(0, ms) / 1000;
}

/**
 * The ingest loop's receive-lag recorder (@intake/pipeline receive-lag.ts: each batch's
 * largest lag over first deliveries, left in Redis for the health page), observed on its
 * way: the histogram sees every batch the health page's latest figure summarises.
 */
export function observingReceiveLag<T extends { lagMs: number }>(recorder: { record(o: T): Promise<void> }, pipeline: Pick<PipelineObserver, "storageEventReceived">): { record(o: T): Promise<void> } {
  return {
    record(o) {
      pipeline.storageEventReceived(o.lagMs);
      return recorder.record(o);
    },
  };
}
