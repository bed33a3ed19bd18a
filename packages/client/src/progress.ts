export interface UploadProgress {
  /** Bytes storage has confirmed (parts it already held on a resume count from the start). */
  bytesSent: number;
  totalBytes: number;
  /** Bytes per second sent by this call since it started sending (skipped parts excluded). */
  rate: number;
}

/**
 * Progress counted in confirmed bytes: a part counts once storage answered 2xx for it, so
 * the numbers only grow (a retried part is not counted twice) and end exactly at the total.
 */
export class ProgressMeter {
  #sent = 0;
  #sentHere = 0;
  readonly #started = Date.now();
  readonly total: number;
  readonly #listener: ((p: UploadProgress) => void) | undefined;
  constructor(total: number, listener?: (p: UploadProgress) => void) {
    this.total = total;
    this.#listener = listener;
  }

  /** Bytes storage already held before this call. */
  skipped(n: number): void {
    this.#sent += n;
    this.#emit();
  }

  confirmed(n: number): void {
    this.#sent += n;
    this.#sentHere += n;
    this.#emit();
  }

  start(): void {
    this.#emit();
  }

  #emit(): void {
    if (!this.#listener) return;
    const seconds = Math.max((Date.now() - this.#started) / 1000, 0.001);
    try {
      this.#listener({ bytesSent: this.#sent, totalBytes: this.total, rate: this.#sentHere / seconds });
    } catch {
      // A throwing progress listener must not break the upload.
    }
  }
}
