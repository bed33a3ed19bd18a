import { STAGES } from "./stage-queues.ts";
import { RescanDeferred } from "./rescan-queue.ts";

/**
 * How much of the scanners a rescan may take while new uploads wait (RESCAN_MAX_SHARE).
 *
 * A rescan competes with new uploads for clamd (and for the CPU clamd runs on). While the
 * pipeline is quiet, the rescan runs at its full concurrency (RESCAN_CONCURRENCY): it only
 * uses capacity nobody asks for. While new uploads are being checked — any stage queue had
 * jobs waiting or running at a reading within the last `quietMs` (a stream of small uploads
 * leaves the queues empty most of the instants between them, so one empty reading is not
 * quiet) — it runs one scan at a time per process, and after a scan that took t ms pauses
 * the rescan queue (on every rescan worker, BullMQ's manual rate limit) for
 * t * (1 - share) / share ms: the rescan then keeps clamd busy at most `share` of the time.
 * share 1: no limit; share 0: the rescan stops whenever new uploads are being checked.
 */
export interface PipelineLoad {
  /** Jobs waiting or running in the pipeline's stage queues. */
  pending(): Promise<number>;
}

export class RescanShare {
  private readonly load: PipelineLoad;
  private readonly share: number;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private readonly quietMs: number;
  private reading: { at: number; busy: boolean } | null = null;
  private lastSeenBusy = Number.NEGATIVE_INFINITY;
  private inFlightWhileBusy = 0;
  private pausedUntil = 0;
  constructor(o: { load: PipelineLoad; share: number; refreshMs?: number; quietMs?: number; now?: () => number }) {
    this.load = o.load;
    this.share = Math.min(Math.max(o.share, 0), 1);
    this.refreshMs = o.refreshMs ?? 100;
    this.quietMs = o.quietMs ?? 2000;
    this.now = o.now ?? Date.now;
  }

  /** Whether new uploads are being checked: seen in the pipeline within quietMs (read at most every refreshMs). */
  async busy(): Promise<boolean> {
    const at = this.now();
    if (!this.reading || at - this.reading.at >= this.refreshMs) {
      const pending = (await this.load.pending().catch(() => 1)) > 0; // Redis unreadable: assume busy (yield)
      if (pending) this.lastSeenBusy = at;
      this.reading = { at, busy: pending };
    }
    return at - this.lastSeenBusy < this.quietMs;
  }

  /**
   * Before a rescan scan: returns a function to call after it, or throws RescanDeferred (the
   * job goes back to waiting and the queue pauses).
   */
  async acquire(): Promise<() => Promise<number>> {
    if (this.share >= 1 || !(await this.busy())) return async () => 0;
    const wait = this.pausedUntil - this.now();
    if (wait > 0) throw new RescanDeferred(Math.ceil(wait));
    // Back off long enough not to spin through the queue (at least 100 ms).
    if (this.share <= 0) throw new RescanDeferred(Math.max(100, this.quietMs / 4));
    if (this.inFlightWhileBusy >= 1) throw new RescanDeferred(Math.max(100, this.refreshMs));
    this.inFlightWhileBusy++;
    const started = this.now();
    return async () => {
      this.inFlightWhileBusy--;
      const took = this.now() - started;
      const pause = Math.ceil((took * (1 - this.share)) / this.share);
      this.pausedUntil = Math.max(this.pausedUntil, this.now() + pause);
      return pause;
    };
  }
}

/** The pipeline's load as the stage queues show it. */
export function stageQueueLoad(queues: { queue(stage: (typeof STAGES)[number]): { getJobCounts(...types: string[]): Promise<Record<string, number>> } }): PipelineLoad {
  return {
    pending: async () => {
      const counts = await Promise.all(STAGES.map((s) => queues.queue(s).getJobCounts("waiting", "active", "prioritized")));
      return counts.reduce((n, c) => n + (c.waiting ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0), 0);
    },
  };
}
