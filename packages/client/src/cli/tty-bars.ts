import cliProgress from "cli-progress";
import { bytes, duration, rate } from "./format.ts";

/**
 * One progress bar per file on a terminal (bytes, rate, ETA, then the file's outcome), drawn
 * by cli-progress's MultiBar. It is the only part of the CLI that writes escape codes, and it
 * is used only when stdout is a TTY.
 */
export class TtyBars {
  readonly #multi: cliProgress.MultiBar;
  readonly #bars: cliProgress.SingleBar[] = [];
  readonly #labelWidth: number;

  constructor(out: NodeJS.WriteStream, labels: readonly string[] = []) {
    // Names longer than the label column keep their end (where the distinguishing part usually is).
    this.#labelWidth = labels.length ? Math.min(24, Math.max(8, ...labels.map((l) => l.length))) : 16;
    this.#multi = new cliProgress.MultiBar(
      {
        stream: out,
        // Our own figures: cli-progress's would count a value of bytes as items.
        format: "{label} [{bar}] {percentage}% {tail}",
        barCompleteChar: "█",
        barIncompleteChar: "░",
        barsize: 20,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        fps: 10,
        // A pseudo-terminal may report 0 columns: cli-progress then assumes its default.
        linewrap: false,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  add(label: string, total: number): number {
    const shown = label.length > this.#labelWidth ? `…${label.slice(-(this.#labelWidth - 1))}` : label.padEnd(this.#labelWidth);
    this.#bars.push(this.#multi.create(Math.max(total, 1), 0, { label: shown, tail: `0 B/${bytes(total)}` }));
    return this.#bars.length - 1;
  }

  update(i: number, sent: number, bytesPerSecond: number): void {
    const bar = this.#bars[i]!;
    const total = bar.getTotal();
    const eta = bytesPerSecond > 0 ? duration((total - sent) / bytesPerSecond) : "--";
    bar.update(sent, { tail: `${bytes(sent)}/${bytes(total)}  ${rate(bytesPerSecond)}  ETA ${eta}` });
  }

  /** The bar's final text (replaces the rate and ETA). */
  finish(i: number, note: string): void {
    const bar = this.#bars[i]!;
    bar.update(bar.getTotal(), { tail: note });
  }

  stop(): void {
    this.#multi.stop();
  }
}
