/**
 * clamd client over node:net: INSTREAM scans, PING, VERSION.
 *
 * Why not the npm `clamscan` package for this (read in node_modules/clamscan, 2.4.0):
 * - scanStream() forwards data with `socket.write(data)` and ignores its return value: no
 *   backpressure, so when clamd reads slower than the source, the whole object piles up
 *   in the socket's write queue (a 2 GiB object = 2 GiB of RSS);
 * - its NodeClamTransform sends "zINSTREAM\0" only with the first data chunk, so an empty
 *   body is sent as a bare terminator (no command) and never gets a proper verdict;
 * - it hides the raw reply: an early "INSTREAM size limit exceeded. ERROR" becomes
 *   "Scan aborted", Heuristics.Limits.Exceeded/Heuristics.Encrypted become isInfected
 *   true, unknown replies become isInfected null;
 * - getVersion() never settles when the connection is reset after connect, and ping()
 *   resolves with an open socket that leaks when the daemon hangs;
 * - no sha256/byte count on the same pass, no AbortSignal.
 * The protocol is small (man clamd: INSTREAM, 4-byte big-endian length-prefixed chunks,
 * zero-length terminator), so this module speaks it directly and keeps every failure
 * mode explicit. The design card named `clamscan`; it was removed as a dependency for these
 * reasons (ARCHITECTURE.md, "Decisions").
 */
import net from "node:net";
import { createHash } from "node:crypto";
import { ScanFailedError } from "./errors.ts";
import { classifyClamdReply, MAX_REPLY_CHARS, parseVersionReply, type ScannerVersion, type UnscannableKind } from "./reply.ts";

export type ScanReport =
  | { outcome: "clean"; bytes: number; sha256: string; raw: string }
  | { outcome: "infected"; signature: string; bytes: number; sha256: string; raw: string }
  | {
      outcome: "unscannable";
      /** Human-readable; the pipeline records it as the quarantine reason. */
      reason: string;
      /** Machine-readable cause. */
      kind: UnscannableKind;
      signature?: string;
      bytes: number;
      sha256: string;
      raw: string;
    };

export type ScanBody = NodeJS.ReadableStream | AsyncIterable<Uint8Array>;

export interface MalwareScanner {
  /**
   * Stream `body` to the scanner; `bytes` and `sha256` cover the whole body (for
   * "unscannable" too: the rest is read and hashed after clamd gives up).
   * Throws ScanFailedError for every transient failure; never reports those as clean.
   * On failure the body's iterator is closed (a Node stream is destroyed).
   */
  scan(body: ScanBody, opts?: { signal?: AbortSignal }): Promise<ScanReport>;
  /** PING -> PONG within connectTimeoutMs; never throws. */
  ping(): Promise<boolean>;
  /** Throws ScanFailedError when clamd is unreachable or answers nonsense. */
  version(): Promise<ScannerVersion>;
}

export interface ClamdScannerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 3310. */
  port?: number;
  /**
   * No-progress timeout of a scan, in ms: reset whenever a chunk is read from the body,
   * the socket drains or clamd sends data. Covers the wait for the verdict, so it must
   * exceed clamd's MaxScanTime (300 s in infra/clamd). Default 330 000.
   */
  timeoutMs?: number;
  /** Connect timeout, and the whole budget of PING/VERSION. Default 5 000. */
  connectTimeoutMs?: number;
  /**
   * Mirror of clamd's StreamMaxLength. Past it, the scanner stops feeding clamd and reports
   * "unscannable" (stream_limit_exceeded) itself, after hashing the rest of the body.
   * Why: clamd answers "INSTREAM size limit exceeded. ERROR" and closes the socket while
   * our data is still in flight; the write then fails with EPIPE/ECONNRESET and Node tears
   * the socket down, often before the reply is read (measured here: 3-5 of 10 scans over
   * the limit lost the reply). Those become transient "connection" failures, so over-limit
   * objects would be retried instead of getting their final verdict.
   * Default 4293918720 (4095 MiB), the StreamMaxLength cap infra/clamd/up.sh writes; set it
   * to the deployment's StreamMaxLength when that is lower (clamd's own default is 100M).
   */
  maxStreamBytes?: number;
  /** Largest INSTREAM chunk sent (larger body chunks are split). Default 1 MiB. */
  chunkBytes?: number;
}

const DEFAULTS = {
  host: "127.0.0.1",
  port: 3310,
  timeoutMs: 330_000,
  connectTimeoutMs: 5_000,
  chunkBytes: 1024 * 1024,
  maxStreamBytes: 4095 * 1024 * 1024,
};

const INSTREAM = Buffer.from("zINSTREAM\0", "latin1");
const TERMINATOR = Buffer.alloc(4);
const STOP = Symbol("stop");

function errCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code ?? e?.message ?? String(err);
}

function abortError(signal: AbortSignal): ScanFailedError {
  return new ScanFailedError("aborted", "scan aborted by the caller", { cause: signal.reason });
}

function connect(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const socket = net.createConnection({ host, port });
    const timer = setTimeout(
      () => fail(new ScanFailedError("connect", `connecting to clamd at ${host}:${port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = () => fail(abortError(signal!));
    const onError = (err: Error) =>
      fail(new ScanFailedError("connect", `cannot connect to clamd at ${host}:${port}: ${errCode(err)}`, { cause: err }));
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    function cleanup() {
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("connect", onConnect);
      signal?.removeEventListener("abort", onAbort);
    }
    function fail(e: ScanFailedError) {
      cleanup();
      socket.on("error", () => {}); // late errors of a socket we gave up on
      socket.destroy();
      reject(e);
    }
    socket.once("error", onError);
    socket.once("connect", onConnect);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** One NUL-terminated command, one NUL-terminated reply (PING, VERSION). */
async function command(host: string, port: number, timeoutMs: number, name: string): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const socket = await connect(host, port, timeoutMs);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let done = false;
    const timer = setTimeout(
      () => finish(new ScanFailedError("timeout", `clamd did not answer ${name} within ${timeoutMs} ms`)),
      Math.max(1, deadline - Date.now()),
    );
    function finish(err?: ScanFailedError) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString("utf8");
      if (err) return reject(err);
      if (!raw.includes("\0")) {
        return reject(
          raw.length === 0
            ? new ScanFailedError("empty_reply", `clamd closed the connection without answering ${name}`)
            : new ScanFailedError("unknown_reply", `incomplete reply to ${name}`, { raw }),
        );
      }
      resolve(raw.slice(0, raw.indexOf("\0")));
    }
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      length += d.length;
      if (d.includes(0)) finish();
      else if (length > MAX_REPLY_CHARS) finish(new ScanFailedError("unknown_reply", `oversized reply to ${name}`));
    });
    socket.on("end", () => finish());
    socket.on("close", () => finish());
    socket.on("error", (e) =>
      finish(
        chunks.some((c) => c.includes(0))
          ? undefined
          : new ScanFailedError("connection", `connection to clamd failed during ${name}: ${errCode(e)}`, { cause: e }),
      ),
    );
    socket.write(`z${name}\0`);
  });
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  // A string chunk means someone called setEncoding(): the bytes are already re-encoded
  // and the hash/scan would not be of the stored object.
  throw new TypeError(`scan body must yield bytes (Buffer/Uint8Array), got ${typeof chunk}`);
}

function trimReply(raw: string): string {
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === "\0" || raw[end - 1] === "\n" || raw[end - 1] === "\r")) end--;
  return raw.slice(0, end);
}

/**
 * A one-shot signal whose waiters are removed when they stop waiting. Why not a long-lived
 * Promise raced with Promise.race: every race attaches a reaction to the long-lived promise
 * that keeps the race's result alive until it settles; racing each body chunk against a
 * `stop` promise that never fires retained every chunk: a 2 GB scan reached 2 GB RSS.
 */
class Latch {
  fired = false;
  private readonly waiters = new Set<() => void>();
  fire(): void {
    if (this.fired) return;
    this.fired = true;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }
  /** Calls `cb` once when fired (now, if already fired); returns an unsubscribe. */
  wait(cb: () => void): () => void {
    if (this.fired) {
      cb();
      return () => {};
    }
    this.waiters.add(cb);
    return () => this.waiters.delete(cb);
  }
}

/** `p`'s outcome, or STOP if `latch` fires first; leaves nothing attached to the latch. */
function raceLatch<T>(p: Promise<T>, latch: Latch): Promise<T | typeof STOP> {
  if (latch.fired) return Promise.resolve(STOP);
  return new Promise((resolve, reject) => {
    const off = latch.wait(() => resolve(STOP));
    p.then(
      (v) => {
        off();
        resolve(v);
      },
      (e: unknown) => {
        off();
        reject(e);
      },
    );
  });
}

/** Resolves when any latch fires. */
function anyLatch(...latches: Latch[]): Promise<void> {
  if (latches.some((l) => l.fired)) return Promise.resolve();
  return new Promise((resolve) => {
    const offs: (() => void)[] = [];
    const done = () => {
      for (const off of offs) off();
      resolve();
    };
    for (const l of latches) offs.push(l.wait(done));
  });
}

async function scanWithClamd(o: Required<ClamdScannerOptions>, body: ScanBody, signal?: AbortSignal): Promise<ScanReport> {
  const hash = createHash("sha256");
  let bytes = 0;
  const socket = await connect(o.host, o.port, o.connectTimeoutMs, signal);

  // --- socket state, fed by events ---
  const reply: Buffer[] = [];
  let replyLength = 0;
  let replyComplete = false; // NUL seen
  let socketError: Error | undefined;
  let halted: ScanFailedError | undefined; // abort or no-progress timeout

  // halt: abort or no-progress timeout. stop: anything that means "stop feeding clamd and
  // look" (halt, an early reply, the connection going away). settled: the reply is
  // complete or the connection is gone.
  const halt = new Latch();
  const stop = new Latch();
  const settled = new Latch();
  const haltResolve = () => halt.fire();
  const stopResolve = () => stop.fire();
  const settledResolve = () => settled.fire();
  let drainWaiter: (() => void) | null = null;

  const idle = setTimeout(() => {
    halted ??= new ScanFailedError("timeout", `no progress for ${o.timeoutMs} ms while scanning (clamd at ${o.host}:${o.port})`);
    haltResolve();
    stopResolve();
  }, o.timeoutMs);
  const progress = () => idle.refresh();
  const onAbort = () => {
    halted ??= abortError(signal!);
    haltResolve();
    stopResolve();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const onGone = () => {
    settledResolve();
    stopResolve();
    drainWaiter?.();
  };

  socket.on("data", (d: Buffer) => {
    progress();
    if (replyLength <= MAX_REPLY_CHARS) {
      reply.push(d);
      replyLength += d.length;
    }
    if (d.includes(0)) {
      replyComplete = true;
      settledResolve();
    }
    stopResolve();
  });
  socket.on("drain", () => {
    progress();
    drainWaiter?.();
  });
  socket.on("end", onGone);
  socket.on("close", onGone);
  socket.on("error", (e) => {
    socketError ??= e;
    onGone();
  });

  const replyText = () => Buffer.concat(reply).toString("utf8");
  const failFromSocket = (what: string): ScanFailedError => {
    const raw = trimReply(replyText());
    if (raw.length > 0) return new ScanFailedError("unknown_reply", `incomplete clamd reply ${what}`, { raw });
    if (socketError) {
      const code = errCode(socketError);
      // clamd closes a stream past StreamMaxLength mid-transfer; name that suspicion.
      const hint = code === "EPIPE" || code === "ECONNRESET" ? ` after ${bytes} bytes (if the object is larger than clamd's StreamMaxLength, set maxStreamBytes to it)` : "";
      return new ScanFailedError("connection", `connection to clamd lost ${what}: ${code}${hint}`, { cause: socketError });
    }
    return new ScanFailedError("empty_reply", `clamd closed the connection without a reply ${what}`);
  };

  const iterator = (body as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<unknown>> | undefined;
  let finished = false;
  let sending = true;
  let clientLimit = false;
  // Set when clamd gave a final answer before the body ended (size limit): we keep reading
  // the body only to count and hash it.
  let early: ReturnType<typeof classifyClamdReply> | undefined;

  const nextChunk = async (until: Latch): Promise<IteratorResult<unknown> | typeof STOP> => {
    pending ??= iterator.next();
    let r: IteratorResult<unknown> | typeof STOP;
    try {
      r = await raceLatch(pending, until);
    } catch (err) {
      pending = undefined;
      throw new ScanFailedError("source", `reading the object failed: ${errCode(err)}`, { cause: err });
    }
    if (r !== STOP) pending = undefined;
    return r;
  };

  /** clamd spoke or vanished while we were still sending: decide whether to go on. */
  const onStopWhileSending = async (): Promise<void> => {
    if (halted) throw halted;
    await anyLatch(settled, halt);
    if (halted) throw halted;
    const raw = trimReply(replyText());
    if (raw.length === 0) throw failFromSocket("before the end of the stream");
    const c = classifyClamdReply(raw);
    if (c.outcome === "error") throw new ScanFailedError(c.kind, c.message, { raw });
    if (c.outcome === "clean") {
      // A verdict before the terminator is not a verdict on this object.
      throw new ScanFailedError("unknown_reply", "clamd reported clean before the stream ended", { raw });
    }
    early = c;
    sending = false;
    socket.destroy();
  };

  try {
    socket.write(INSTREAM);
    for (;;) {
      const r = await nextChunk(sending ? stop : halt);
      if (r === STOP) {
        if (sending) {
          await onStopWhileSending();
          continue;
        }
        throw halted ?? new ScanFailedError("aborted", "scan interrupted");
      }
      if (r.done) {
        finished = true;
        break;
      }
      const buf = toBuffer(r.value);
      progress();
      if (buf.length === 0) continue; // a zero-length frame would end the stream early
      hash.update(buf);
      bytes += buf.length;
      if (!sending) continue;
      if (bytes > o.maxStreamBytes) {
        clientLimit = true;
        sending = false;
        socket.destroy();
        continue;
      }
      for (let off = 0; off < buf.length && sending; off += o.chunkBytes) {
        const part = buf.subarray(off, Math.min(buf.length, off + o.chunkBytes));
        const header = Buffer.allocUnsafe(4);
        header.writeUInt32BE(part.length, 0);
        socket.cork();
        socket.write(header);
        socket.write(part);
        socket.uncork();
        // Backpressure: never more than one chunk plus the socket's buffer in memory.
        while (socket.writableNeedDrain && !stop.fired) {
          await raceLatch(new Promise<void>((r2) => (drainWaiter = r2)), stop);
          drainWaiter = null;
        }
        if (halted) throw halted;
        if (stop.fired) await onStopWhileSending();
      }
    }

    const sha256 = hash.digest("hex");
    if (clientLimit) {
      return {
        outcome: "unscannable",
        kind: "stream_limit_exceeded",
        reason: `the object (${bytes} bytes) is larger than the scanner's stream limit of ${o.maxStreamBytes} bytes: it was not scanned`,
        bytes,
        sha256,
        raw: "",
      };
    }
    if (early) {
      const raw = trimReply(replyText());
      if (early.outcome === "infected") return { outcome: "infected", signature: early.signature, bytes, sha256, raw };
      if (early.outcome === "unscannable") {
        return { outcome: "unscannable", kind: early.kind, reason: early.reason, ...(early.signature ? { signature: early.signature } : {}), bytes, sha256, raw };
      }
      throw new ScanFailedError("unknown_reply", "unexpected early clamd reply", { raw });
    }

    socket.write(TERMINATOR);
    progress();
    await anyLatch(settled, halt);
    if (halted) throw halted;
    const raw = trimReply(replyText());
    if (raw.length === 0) throw failFromSocket("after the stream ended");
    const c = classifyClamdReply(raw);
    switch (c.outcome) {
      case "clean":
        // Strict: "clean" only with the reply's NUL terminator, i.e. a complete answer.
        if (!replyComplete) throw new ScanFailedError("unknown_reply", "clamd's reply was cut short", { raw });
        return { outcome: "clean", bytes, sha256, raw };
      case "infected":
        return { outcome: "infected", signature: c.signature, bytes, sha256, raw };
      case "unscannable":
        return { outcome: "unscannable", kind: c.kind, reason: c.reason, ...(c.signature ? { signature: c.signature } : {}), bytes, sha256, raw };
      case "error":
        throw new ScanFailedError(c.kind, c.message, { raw });
    }
    throw new ScanFailedError("unknown_reply", "unclassified clamd reply", { raw });
  } finally {
    clearTimeout(idle);
    signal?.removeEventListener("abort", onAbort);
    socket.destroy();
    if (!finished) {
      // Abandon the body: a Node stream's iterator destroys the stream. Not awaited: an
      // async generator stuck inside an await only runs return() after that await settles,
      // which for a stalled source is never.
      pending?.catch(() => {});
      try {
        Promise.resolve(iterator.return?.()).catch(() => {});
      } catch {
        // the body is being abandoned; its own error is not ours to report
      }
    }
  }
}

/** A MalwareScanner talking to clamd over TCP. No connection is opened until used. */
export function createClamdScanner(options: ClamdScannerOptions = {}): MalwareScanner {
  const o = {
    host: options.host ?? DEFAULTS.host,
    port: options.port ?? DEFAULTS.port,
    timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    chunkBytes: options.chunkBytes ?? DEFAULTS.chunkBytes,
    maxStreamBytes: options.maxStreamBytes ?? DEFAULTS.maxStreamBytes,
  };
  if (!Number.isSafeInteger(o.maxStreamBytes) || o.maxStreamBytes < 0) throw new RangeError("maxStreamBytes must be a non-negative integer");
  if (!Number.isInteger(o.chunkBytes) || o.chunkBytes < 1 || o.chunkBytes > 0xffffffff) {
    throw new RangeError("chunkBytes must be an integer between 1 and 2^32-1");
  }
  return {
    scan: (body, opts) => scanWithClamd(o, body, opts?.signal),
    async ping() {
      try {
        return (await command(o.host, o.port, o.connectTimeoutMs, "PING")).trim() === "PONG";
      } catch {
        return false;
      }
    },
    async version() {
      const raw = await command(o.host, o.port, o.connectTimeoutMs, "VERSION");
      const v = parseVersionReply(raw);
      if (!v) throw new ScanFailedError("unknown_reply", "unrecognised VERSION reply", { raw });
      return v;
    },
  };
}
