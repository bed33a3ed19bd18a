import type { MemberSink } from "./zip-members.ts";
import { hexDigit } from "./zip-streams.ts";

/**
 * PDF text filters clamd decodes in front of FlateDecode ([/ASCIIHexDecode /FlateDecode],
 * [/ASCII85Decode /FlateDecode]; measured: EICAR in a ZIP behind either is found), so a ZIP
 * behind them is extracted and cut like any other. Each decodes for an `inner` member (the
 * inflater), dropping the first `skip` decoded bytes (the zlib header, already checked).
 */

const isPdfSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x0c || c === 0x00;

/** Collects decoded bytes and hands them to `inner` in slices. */
class Output {
  private readonly buf = Buffer.allocUnsafe(32 * 1024);
  private n = 0;
  private skip: number;
  private readonly inner: MemberSink;
  constructor(inner: MemberSink, skip: number) {
    this.inner = inner;
    this.skip = skip;
  }
  byte(b: number): void {
    if (this.skip > 0) {
      this.skip--;
      return;
    }
    this.buf[this.n++] = b;
    if (this.n === this.buf.length) this.flush();
  }
  flush(): void {
    if (this.n && !this.inner.done) this.inner.feed(this.buf.subarray(0, this.n));
    this.n = 0;
  }
}

/**
 * A PDF text filter decoded byte by byte for `inner`, less the first `skip` decoded bytes
 * (a zlib header already checked). `take` answers false at the filter's end (its end marker
 * or any byte outside its alphabet): what was decoded so far is handed on and `inner` ends.
 */
abstract class TextFilterMember implements MemberSink {
  protected readonly inner: MemberSink;
  protected readonly out: Output;

  constructor(inner: MemberSink, skip: number) {
    this.inner = inner;
    this.out = new Output(inner, skip);
  }

  get done(): boolean {
    return this.inner.done;
  }

  feed(data: Uint8Array): void {
    for (let i = 0; i < data.length && !this.inner.done; i++) {
      const c = data[i]!;
      if (isPdfSpace(c)) continue;
      if (!this.take(c)) {
        this.out.flush();
        return this.inner.end();
      }
    }
    this.out.flush();
  }

  end(): void {
    this.inner.end();
  }

  protected abstract take(c: number): boolean;
}

/** ASCIIHex-encoded data (PDF white space skipped, ">" or any other byte ends it). */
export class HexMember extends TextFilterMember {
  private nibble = -1;

  protected take(c: number): boolean {
    const d = hexDigit(c);
    if (d < 0) return false;
    if (this.nibble < 0) {
      this.nibble = d;
      return true;
    }
    this.out.byte(this.nibble * 16 + d);
    this.nibble = -1;
    return true;
  }
}

/** ASCII85 (Adobe's: "z" for four zero bytes, "~>" or any other byte ends it). */
export class Ascii85Member extends TextFilterMember {
  private group: number[] = [];

  protected take(c: number): boolean {
    if (c === 0x7a && this.group.length === 0) {
      for (let j = 0; j < 4; j++) this.out.byte(0);
      return true;
    }
    if (c < 0x21 || c > 0x75) {
      this.tail();
      return false;
    }
    this.group.push(c - 0x21);
    if (this.group.length === 5) this.emit(4);
    return true;
  }

  /** A last group of 2-4 digits stands for 1-3 bytes (padded with "u"). */
  private tail(): void {
    const n = this.group.length;
    if (n < 2) return;
    while (this.group.length < 5) this.group.push(84);
    this.emit(n - 1);
  }

  private emit(bytes: number): void {
    let v = 0;
    for (const d of this.group) v = v * 85 + d;
    this.group = [];
    for (let j = 0; j < bytes; j++) this.out.byte(Math.floor(v / 2 ** (24 - 8 * j)) & 0xff);
  }
}
