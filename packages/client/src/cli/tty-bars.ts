import { bytes, duration, rate } from "./format.ts";

/**
 * One progress line per file on a terminal (bytes, rate, ETA, then the file's outcome),
 * redrawn in place at most ten times a second. Hand-written because cli-progress is not
 * installed in this workspace (see the package's dependencies); it is the only part of
 * the CLI that writes escape codes, and it is used only when stdout is a TTY.
 */
export class TtyBars {
  readonly #out: NodeJS.WriteStream;
  readonly #rows: { label: string; sent: number; total: number; rate: number; note: string | undefined }[] = [];
  #drawn = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
  }

  add(label: string, total: number): number {
    this.#rows.push({ label, sent: 0, total, rate: 0, note: undefined });
    this.#schedule(true);
    return this.#rows.length - 1;
  }

  update(i: number, sent: number, bytesPerSecond: number): void {
    const r = this.#rows[i]!;
    r.sent = sent;
    r.rate = bytesPerSecond;
    this.#schedule(false);
  }

  /** The row's final text (replaces the rate and ETA). */
  finish(i: number, note: string): void {
    this.#rows[i]!.note = note;
    this.#schedule(true);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#draw();
  }

  #schedule(now: boolean): void {
    if (now) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#draw();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => ((this.#timer = undefined), this.#draw()), 100);
    }
  }

  #draw(): void {
    // A pseudo-terminal may report 0 columns: assume 80 then.
    const width = Math.max(40, this.#out.columns || 80);
    const labelWidth = Math.min(24, Math.max(...this.#rows.map((r) => r.label.length)));
    let text = this.#drawn > 0 ? `\x1b[${this.#drawn}F` : "";
    for (const r of this.#rows) {
      const label = r.label.length > labelWidth ? `…${r.label.slice(-(labelWidth - 1))}` : r.label.padEnd(labelWidth);
      const fraction = r.total > 0 ? r.sent / r.total : 1;
      const tail = r.note ?? `${bytes(r.sent)}/${bytes(r.total)}  ${rate(r.rate)}  ETA ${r.rate > 0 ? duration((r.total - r.sent) / r.rate) : "--"}`;
      const barWidth = Math.max(10, Math.min(30, width - labelWidth - tail.length - 10));
      const filled = Math.round(fraction * barWidth);
      const line = `${label} [${"█".repeat(filled)}${"░".repeat(barWidth - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ${tail}`;
      text += `\x1b[2K${line.slice(0, width - 1)}\n`;
    }
    this.#drawn = this.#rows.length;
    this.#out.write(text);
  }
}
