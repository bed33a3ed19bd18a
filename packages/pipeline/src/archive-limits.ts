import { ZipBudget, type ZipLimits } from "./containers/zip-budget.ts";
import { ZipWalker } from "./containers/zip-walker.ts";

/**
 * ZIP limits, checked on the pass that streams the object to clamd.
 *
 * clamd (1.4.6) extracts a ZIP member only up to MaxFileSize and then answers OK about the
 * part it saw, with no alert even with AlertExceedsMax ("cli_unzip: trimming output size to
 * maxfilesize"), and it finds ZIPs anywhere in a file (after a prefix, appended to a PNG or
 * a PDF, inside another ZIP). So every ZIP structure anywhere in the object is walked here
 * (containers/zip-walker.ts), each member's real content is measured (deflate inflated, not
 * the sizes its headers state), nested ZIPs are followed to clamd's MaxRecursion, and what
 * clamd would cut, skip or cannot decode is a problem: fail closed.
 */
export type ZipLimitOptions = ZipLimits;

export class ZipLimitCheck {
  private readonly budget: ZipBudget;
  private readonly walker: ZipWalker;
  private seen = 0;

  constructor(options: ZipLimitOptions) {
    this.budget = new ZipBudget(options);
    this.walker = new ZipWalker(this.budget);
  }

  push(chunk: Buffer): void {
    this.seen += chunk.length;
    this.walker.push(chunk);
  }

  /** null when nothing in the object exceeds what clamd reads whole, else why it cannot be passed. */
  finish(totalBytes: number): string | null {
    this.walker.finish();
    if (this.budget.problem) return this.budget.problem;
    if (this.seen !== totalBytes) return `${this.seen} bytes were checked for ZIP structures but the object has ${totalBytes}`;
    return null;
  }
}
