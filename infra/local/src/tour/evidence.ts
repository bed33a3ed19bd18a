/**
 * How the tour shows what it does: each step prints what it changes and the evidence it
 * reads back, and stops with a TourFailure naming the evidence it did not see. Waiting is
 * polling under a deadline: the dev stack answers within seconds (infra/bin/dev reads
 * clamd's signatures every 5 s), and the deadlines leave room for a busy machine.
 */
export class TourFailure extends Error {
  readonly code = "tour_evidence_missing" as const;
  constructor(message: string) {
    super(message);
    this.name = "TourFailure";
  }
}

/** The dev stack is not there or not set up as the tour needs: nothing was changed. */
export class TourSetupError extends Error {
  readonly code = "tour_setup" as const;
  constructor(message: string) {
    super(message);
    this.name = "TourSetupError";
  }
}

const out = (line: string) => process.stdout.write(`${line}\n`);

export const say = {
  step: (n: number, title: string) => out(`\n${n}. ${title}`),
  line: (text: string) => out(`   ${text}`),
  /** A piece of evidence seen. */
  seen: (text: string) => out(`   ✓ ${text}`),
  /** A command the operator would type, and what it printed. */
  command: (command: string, output: string) => {
    out(`   $ ${command}`);
    for (const l of output.trim().split("\n")) if (l.trim()) out(`     ${l}`);
  },
  cleanup: (text: string) => out(`   cleanup: ${text}`),
  raw: out,
};

/** The evidence must hold, or the step fails with `message`. */
export function see(condition: unknown, message: string): asserts condition {
  if (!condition) throw new TourFailure(message);
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  signal?: AbortSignal;
}

/** Polls `probe` until it returns something (not null/undefined/false), or fails naming `what`. */
export async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, o: WaitOptions): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  let lastError: unknown;
  for (;;) {
    o.signal?.throwIfAborted();
    try {
      const v = await probe();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      if (err instanceof TourFailure) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError ? ` (last error: ${(lastError as Error).message})` : "";
      throw new TourFailure(`not seen within ${Math.round(o.timeoutMs / 1000)} s: ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 250));
  }
}
