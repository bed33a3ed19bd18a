import { Inflate } from "fflate";

/**
 * A synchronous, incremental raw-deflate decoder over fflate's Inflate that bounds its memory
 * and says when the stream has ended.
 *
 * fflate hands each push's whole output to one callback, so a push of n input bytes can
 * allocate ~1032 n output bytes (deflate's best ratio). Input is therefore fed in slices
 * whose size adapts to the observed ratio: about 1 MiB of output per slice at most, so a
 * bomb cannot make one push allocate gigabytes.
 *
 * fflate also keeps appending input after the final block (it ignores it but holds it),
 * and exposes no "ended" flag: the state fields it keeps (`s.f` final block seen, `s.l` no
 * block in progress) are read here, and a self-test at load time fails loudly if a new
 * fflate version renamed them, instead of silently never seeing an end.
 */

const OUTPUT_PER_SLICE = 1024 * 1024;
const MIN_SLICE = 256;
const MAX_SLICE = 64 * 1024;

type FflateState = { s: { f?: number; l?: unknown } };

export class RawInflater {
  private readonly inflate: Inflate;
  private slice = 1024;
  private produced = 0;
  ended = false;

  /** `ondata` gets every output chunk in order; it may not keep a reference past the call. */
  constructor(ondata: (chunk: Uint8Array) => void) {
    this.inflate = new Inflate((chunk) => {
      this.produced = chunk.length;
      if (chunk.length) ondata(chunk);
    });
  }

  /** Feeds compressed bytes; throws on invalid deflate data. Bytes after the end are ignored. */
  push(data: Uint8Array, stop: () => boolean = () => false): void {
    for (let at = 0; at < data.length && !this.ended && !stop(); ) {
      const part = data.subarray(at, at + this.slice);
      at += part.length;
      this.produced = 0;
      this.inflate.push(part);
      if (this.produced > OUTPUT_PER_SLICE) this.slice = Math.max(MIN_SLICE, this.slice >> 1);
      else if (this.produced < OUTPUT_PER_SLICE >> 3) this.slice = Math.min(MAX_SLICE, this.slice << 1);
      const s = (this.inflate as unknown as FflateState).s;
      this.ended = s.f === 1 && !s.l;
    }
  }
}

(function selfTest() {
  // "a" as one final fixed-Huffman block (what deflateRaw("a") gives).
  const probe = new RawInflater(() => {});
  probe.push(Uint8Array.of(0x4b, 0x04, 0x00));
  if (!probe.ended) throw new Error("fflate's Inflate no longer exposes its end-of-stream state; the ZIP check cannot run");
})();
