import { InflateRaw, constants } from "node:zlib";

/**
 * A synchronous, incremental raw-deflate decoder that refuses exactly what clamd's decoder
 * refuses, with bounded memory, and says when the stream has ended.
 *
 * clamd inflates ZIP members with zlib (inflateInit2 -MAX_WBITS) and discards a member on
 * Z_DATA_ERROR. fflate (used here before) is more lenient than zlib: it checks neither a
 * stored block's NLEN nor that Huffman code lengths form a complete code, so a stream made
 * to fail only under zlib after its payload inflated fine here and passed, while clamd threw
 * the member away unscanned (test: "a stored block whose NLEN is wrong"). So this decodes
 * with zlib itself, the one Node links (1.3.x; the same checks as Debian's).
 *
 * Node offers zlib only as a stream (asynchronous) or as a one-shot call that closes its
 * handle after one buffer; the scan stage's checks are synchronous and see the object chunk
 * by chunk. So this drives the native handle the way Node's own sync path does
 * (`_handle.writeSync` with `_writeState` receiving avail_out/avail_in), and takes zlib's
 * errors through `handle.onerror`. Those are Node internals: a self-test at load time
 * fails loudly if they changed, instead of the check silently passing everything.
 *
 * Each writeSync fills at most one OUTPUT-byte buffer, so a bomb never makes one call
 * allocate more than that.
 */

const OUTPUT = 64 * 1024;

type ZlibHandle = {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  close(): void;
  onerror: (message: string, errno: number, code?: string) => void;
};
type ZlibInternals = { _handle: ZlibHandle | null; _writeState: Uint32Array };
/** A zlib handle, where it reports avail_out/avail_in, and its own output buffer (a nested member's must not overwrite it). */
type Engine = { handle: ZlibHandle & { reset(): void }; state: Uint32Array; out: Buffer };

/**
 * Engines kept for reuse (zlib's inflateReset): making one costs ~10 µs, and an object of
 * back-to-back PDF "stream" keywords or tiny members asks for one every few bytes
 * (measured: 0.3 MiB/s without reuse). The walk is synchronous, so an engine is never
 * shared by two members at once.
 */
const spare: Engine[] = [];
const MAX_SPARE = 64;

function engine(): Engine {
  const reused = spare.pop();
  if (reused) return reused;
  const z = new InflateRaw() as unknown as ZlibInternals;
  if (!z._handle || typeof z._handle.writeSync !== "function" || !(z._writeState instanceof Uint32Array)) {
    throw new Error("node:zlib no longer exposes its synchronous handle; the ZIP check cannot run");
  }
  return { handle: z._handle as Engine["handle"], state: z._writeState, out: Buffer.allocUnsafe(OUTPUT) };
}

export class RawInflater {
  private engine: Engine | null;
  private handle: ZlibHandle | null;
  private readonly state: Uint32Array;
  private readonly out: Buffer;
  private readonly ondata: (chunk: Uint8Array) => void;
  private error: string | null = null;
  ended = false;
  /** Once ended: the bytes of the last push after the stream's end (valid until the caller's next call). */
  leftover: Uint8Array = new Uint8Array(0);

  /** `ondata` gets every output chunk in order; it may not keep a reference past the call. */
  constructor(ondata: (chunk: Uint8Array) => void) {
    this.ondata = ondata;
    this.engine = engine();
    this.handle = this.engine.handle;
    this.state = this.engine.state;
    this.out = this.engine.out;
    this.handle.onerror = (message, _errno, code) => {
      this.error = `${code ?? "zlib error"}: ${message}`;
    };
  }

  /** Feeds compressed bytes; throws on data zlib refuses. Bytes after the end are ignored. */
  push(data: Uint8Array, stop: () => boolean = () => false): void {
    // Until the input is used up and zlib had room to spare: a full output buffer may leave
    // output pending (a long match) that needs no more input.
    for (let at = 0, full = true; (at < data.length || full) && !this.ended && this.handle && !stop(); ) {
      const inLen = data.length - at;
      this.handle.writeSync(constants.Z_NO_FLUSH, data, at, inLen, this.out, 0, OUTPUT);
      if (this.error) {
        this.close();
        throw new Error(this.error);
      }
      const availOut = this.state[0]!, availIn = this.state[1]!;
      at += inLen - availIn;
      full = availOut === 0;
      if (availOut < OUTPUT) this.ondata(this.out.subarray(0, OUTPUT - availOut));
      // zlib stops with input left and room for output only at Z_STREAM_END (errors are
      // reported above): a stream ending exactly at `data`'s end is seen on the next push.
      if (availOut > 0 && availIn > 0) {
        this.ended = true;
        this.leftover = data.subarray(at);
      }
    }
    if (this.ended) this.close();
  }

  /** Frees zlib's state (its window); the inflater takes no more input. */
  close(): void {
    const e = this.engine;
    this.engine = null;
    this.handle = null;
    if (!e) return;
    if (this.error || spare.length >= MAX_SPARE) return e.handle.close();
    e.handle.reset();
    spare.push(e);
  }
}

(function selfTest() {
  // "a" as one final fixed-Huffman block (what deflateRaw("a") gives), then a stray byte.
  let out = "";
  const probe = new RawInflater((c) => (out += Buffer.from(c).toString("latin1")));
  probe.push(Uint8Array.of(0x4b, 0x04, 0x00, 0xff));
  if (!probe.ended || out !== "a") throw new Error("node:zlib's synchronous handle no longer reports output or the stream's end; the ZIP check cannot run");
  // A reserved block type (11) must be an error, as zlib reports it.
  const bad = new RawInflater(() => {});
  let threw = false;
  try {
    bad.push(Uint8Array.of(0x07, 0, 0, 0));
  } catch {
    threw = true;
  }
  if (!threw) throw new Error("node:zlib's synchronous handle no longer reports errors; the ZIP check cannot run");
})();
