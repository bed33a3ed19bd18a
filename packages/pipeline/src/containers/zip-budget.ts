/**
 * What every level of the ZIP walk shares: clamd's limits, the running totals, the caps that
 * keep memory bounded, and the first problem found. The first problem sticks and stops all
 * further work: one reason is enough to refuse, and an attacker cannot make us spend more.
 */
export interface ZipLimits {
  /** clamd's MaxFileSize: a member whose content is larger is cut silently (cli_unzip "trimming output size to maxfilesize"). */
  maxFileSize: number;
  /** clamd's MaxScanSize less the object itself: what all extracted members may add up to. */
  maxTotalBytes: number;
  /** clamd's MaxRecursion: members at that depth or deeper are refused. */
  maxRecursion: number;
  /** Inflaters alive at once (each holds a 32 KiB window plus its output); above it: refused, not skipped. */
  maxInflaters?: number;
  /** Doubtful members (corrupt data, methods we cannot decode) remembered until a central directory names them. */
  maxSuspects?: number;
}

export const DEFAULT_MAX_INFLATERS = 32;
export const DEFAULT_MAX_SUSPECTS = 1024;
const MAX_CONFIRMED = 10_000;
/**
 * Members and compressed streams followed in one object. Each costs ~1.5 µs however small
 * (measured: 4 MiB of back-to-back PDF "stream" keywords, 420 000 streams, 0.64 s), so this
 * bounds an object built of nothing else to ~1.5 s; clamd's own MaxFiles is 10 000 per archive.
 */
export const MAX_FOLLOWED = 1_000_000;

export class ZipBudget {
  readonly maxFileSize: number;
  readonly maxTotalBytes: number;
  readonly maxRecursion: number;
  readonly maxInflaters: number;
  private readonly maxSuspects: number;
  problem: string | null = null;
  totalBytes = 0;
  inflaters = 0;
  private followed = 0;
  /** Doubtful members by name (as clamd reads it: the first 255 bytes), with what is wrong. */
  private readonly suspects = new Map<string, string>();
  /** Names with evidence of being real members (clamd's MaxFiles of them at most). */
  private readonly confirmed = new Set<string>();

  constructor(limits: ZipLimits) {
    this.maxFileSize = limits.maxFileSize;
    this.maxTotalBytes = limits.maxTotalBytes;
    this.maxRecursion = limits.maxRecursion;
    this.maxInflaters = limits.maxInflaters ?? DEFAULT_MAX_INFLATERS;
    this.maxSuspects = limits.maxSuspects ?? DEFAULT_MAX_SUSPECTS;
  }

  fail(problem: string): void {
    this.problem ??= problem;
  }

  /** Counts `n` more extracted bytes toward MaxScanSize. */
  addExtracted(n: number): void {
    this.totalBytes += n;
    if (this.totalBytes > this.maxTotalBytes) this.fail(`ZIP members unpack to more than ${this.maxTotalBytes} bytes in all, above what the scanner reads`);
  }

  /** One more member or stream to follow; false (and the problem set) past MAX_FOLLOWED. */
  follow(): boolean {
    if (++this.followed <= MAX_FOLLOWED) return true;
    this.fail(`more than ${MAX_FOLLOWED} ZIP members and compressed streams in one object: cannot be established within bounded work`);
    return false;
  }

  acquireInflater(name: string): boolean {
    if (this.inflaters >= this.maxInflaters) {
      this.fail(`more than ${this.maxInflaters} compressed ZIP members open at once (at ${name}): cannot be established within bounded memory`);
      return false;
    }
    this.inflaters++;
    return true;
  }

  releaseInflater(): void {
    this.inflaters--;
  }

  /**
   * A local header alone is not evidence: "PK\x03\x04" turns up in random bytes, and then its
   * deflate data fails or its method is nonsense. Such a member becomes a finding only when
   * something random bytes do not give is there too: a central directory entry naming it, or
   * a ZIP structure (or the stream's end) exactly where its stated size ends.
   */
  noteSuspect(name: string, problem: string): void {
    if (this.confirmed.has(name)) this.fail(problem);
    else if (this.suspects.size >= this.maxSuspects) this.fail(`more than ${this.maxSuspects} doubtful ZIP members (corrupt data or unknown methods)`);
    else if (!this.suspects.has(name)) this.suspects.set(name, problem);
  }

  /** Evidence that `name` is a real member, before or after it turns out doubtful. */
  corroborate(name: string): void {
    const problem = this.suspects.get(name);
    if (problem) this.fail(problem);
    else if (this.confirmed.size < MAX_CONFIRMED) this.confirmed.add(name);
  }
}
