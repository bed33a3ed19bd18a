import type { ZipBudget } from "./zip-budget.ts";
import { RawInflater } from "./zip-inflate.ts";
import { INCOMPLETE, MAX_GZIP_HEADER, NONE, gzipHeader } from "./zip-streams.ts";

/** Where a member's content goes: a nested walker one level deeper (a ZIP may hold ZIPs). */
export interface ByteSink {
  push(chunk: Uint8Array): void;
  finish(): void;
}

/** A member of a ZIP found in the stream, fed its data bytes (the ones after its local header). */
export interface MemberSink {
  readonly done: boolean;
  feed(data: Uint8Array): void;
  /** The member's data ended (its stated size was reached, or the stream at this level ended). */
  end(): void;
}

/** Counts a member's content against MaxFileSize (per member) and MaxScanSize (in all). */
class ContentMeter {
  private bytes = 0;
  private readonly budget: ZipBudget;
  private readonly name: string;
  constructor(budget: ZipBudget, name: string) {
    this.budget = budget;
    this.name = name;
  }

  add(n: number): void {
    this.bytes += n;
    this.budget.addExtracted(n);
    if (this.bytes > this.budget.maxFileSize) {
      this.budget.fail(`ZIP member ${this.name} unpacks to more than ${this.budget.maxFileSize} bytes, above the limit the scanner reads whole`);
    }
  }
}

/**
 * Method 0: the member's bytes are its content. Counted as they pass (clamd trims a stored
 * member at MaxFileSize too) and handed to a nested walker when given one.
 */
export class StoredMember implements MemberSink {
  done = false;
  private readonly meter: ContentMeter;
  private readonly nested: ByteSink | null;

  constructor(budget: ZipBudget, name: string, nested: ByteSink | null) {
    this.meter = new ContentMeter(budget, name);
    this.nested = nested;
  }

  feed(data: Uint8Array): void {
    this.meter.add(data.length);
    this.nested?.push(data);
  }

  /** Counts bytes known only by their offsets (a member whose bytes are searched at its own level). */
  count(n: number): void {
    this.meter.add(n);
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.nested?.finish();
  }
}

/**
 * Method 8: inflated here, counting the bytes it really yields (not the size its header
 * states), the output walked one level deeper. Invalid data ends the member quietly but
 * is remembered by name: see ZipBudget.noteSuspect.
 */
export class DeflatedMember implements MemberSink {
  done = false;
  private readonly meter: ContentMeter;
  /** Made on the member's first bytes: only members whose data is being read hold one (and count toward the cap). */
  private inflater: RawInflater | null = null;
  private readonly budget: ZipBudget;
  private readonly name: string;
  private readonly key: string | null;
  private readonly nested: ByteSink;

  /** `key` null: not a ZIP member (a gzip's or a PDF stream's data), whose corrupt data only ends it. */
  constructor(budget: ZipBudget, name: string, key: string | null, nested: ByteSink) {
    this.budget = budget;
    this.name = name;
    this.key = key;
    this.nested = nested;
    this.meter = new ContentMeter(budget, name);
  }

  feed(data: Uint8Array): void {
    if (this.done || data.length === 0) return;
    if (!this.inflater) {
      if (!this.budget.acquireInflater(this.name)) {
        this.done = true;
        return;
      }
      this.inflater = new RawInflater((chunk) => {
        this.meter.add(chunk.length);
        if (!this.budget.problem) this.nested.push(chunk);
      });
    }
    try {
      this.inflater.push(data, () => this.budget.problem !== null);
    } catch {
      if (this.key !== null) this.budget.noteSuspect(this.key, `ZIP member ${this.name} has corrupt deflate data: clamd discards such a member unscanned (zlib Z_DATA_ERROR), whatever came before the fault`);
      this.end();
      return;
    }
    if (this.inflater.ended) this.end();
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    if (this.inflater) {
      this.inflater.close();
      this.budget.releaseInflater();
    }
    this.nested.finish();
  }
}

/** Both at once: clamd inflates a stored member whose stated size is below its length, then also scans it stored. */
export class BothMember implements MemberSink {
  private readonly members: MemberSink[];
  constructor(members: MemberSink[]) {
    this.members = members;
  }
  get done(): boolean {
    return this.members.every((m) => m.done);
  }
  feed(data: Uint8Array): void {
    for (const m of this.members) if (!m.done) m.feed(data);
  }
  end(): void {
    for (const m of this.members) m.end();
  }
}

/**
 * A gzip's data from its first member's deflate stream on: each member is inflated in turn
 * (after its 8-byte trailer, another gzip header continues the file, as zcat and clamd read
 * it: measured, EICAR in a second member is found) and all output goes to one nested walk.
 * Anything else after a trailer ends it; corrupt data ends it too (clamd scans what it got).
 */
export class GzipMember implements MemberSink {
  done = false;
  private readonly meter: ContentMeter;
  private inflater: RawInflater | null = null;
  private phase: "data" | "trailer" | "header" = "data";
  /** Trailer or next header bytes gathered so far. */
  private held: Buffer = Buffer.alloc(0);
  private readonly budget: ZipBudget;
  private readonly name: string;
  private readonly nested: ByteSink;

  constructor(budget: ZipBudget, name: string, nested: ByteSink) {
    this.budget = budget;
    this.name = name;
    this.nested = nested;
    this.meter = new ContentMeter(budget, name);
  }

  feed(data: Uint8Array): void {
    let d = data;
    while (d.length && !this.done && !this.budget.problem) {
      if (this.phase === "data") {
        if (!this.inflate(d)) return;
        d = this.inflater!.leftover;
        this.release();
        this.phase = "trailer";
      } else if (this.phase === "trailer") {
        const take = Math.min(8 - this.held.length, d.length);
        this.held = Buffer.concat([this.held, d.subarray(0, take)]);
        d = d.subarray(take);
        if (this.held.length === 8) [this.phase, this.held] = ["header", Buffer.alloc(0)];
      } else {
        this.held = Buffer.concat([this.held, d]);
        d = new Uint8Array(0);
        const g = gzipHeader(this.held, 0);
        if (g.at === NONE) return this.end();
        if (g.at === INCOMPLETE && this.held.length <= MAX_GZIP_HEADER) return;
        if (g.at === INCOMPLETE || g.at > MAX_GZIP_HEADER) return this.budget.fail(`a gzip header longer than ${MAX_GZIP_HEADER} bytes in ${this.name}: its content cannot be followed`);
        d = this.held.subarray(g.at);
        this.held = Buffer.alloc(0);
        this.phase = "data";
      }
    }
  }

  /** Inflates `d`; true once the member's deflate stream ended (its leftover is what follows). */
  private inflate(d: Uint8Array): boolean {
    if (!this.inflater) {
      if (!this.budget.acquireInflater(this.name)) {
        this.done = true;
        return false;
      }
      this.inflater = new RawInflater((chunk) => {
        this.meter.add(chunk.length);
        if (!this.budget.problem) this.nested.push(chunk);
      });
    }
    try {
      this.inflater.push(d, () => this.budget.problem !== null);
    } catch {
      this.end();
      return false;
    }
    return this.inflater.ended;
  }

  private release(): void {
    if (!this.inflater) return;
    this.inflater.close();
    this.inflater = null;
    this.budget.releaseInflater();
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.release();
    this.nested.finish();
  }
}

