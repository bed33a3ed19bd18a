/**
 * One clamd INSTREAM scan, written as the state machine it is (man clamd: "zINSTREAM\0",
 * chunks each prefixed by a 4-byte big-endian length, a zero-length chunk to end, one
 * NUL-terminated reply). The body is hashed and counted on the same pass, whatever clamd
 * does, so even an unscannable report names the bytes it is about.
 */
import type net from "node:net";
import { createHash } from "node:crypto";
import { abortError, connect, errCode } from "./clamd-socket.ts";
import { ScanFailedError } from "./errors.ts";
import { classifyClamdReply, MAX_REPLY_CHARS, type ClamdReplyClass, type UnscannableKind } from "./reply.ts";

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

/** The options of createClamdScanner (clamd.ts documents each), all resolved. */
export interface InstreamSettings {
  host: string;
  port: number;
  timeoutMs: number;
  connectTimeoutMs: number;
  chunkBytes: number;
  maxStreamBytes: number;
}

const INSTREAM = Buffer.from("zINSTREAM\0", "latin1");
const TERMINATOR = Buffer.alloc(4);
const INTERRUPTED = Symbol("interrupted");

/** A reply before the terminator that still settles the object: a find, or a limit it hit. */
type EarlyVerdict = Extract<ClamdReplyClass, { outcome: "infected" | "unscannable" }>;
type Verdict = Exclude<ClamdReplyClass, { outcome: "error" }>;

/**
 * Where a scan stands (connecting is the connect() before a scan object exists):
 *
 *   sending ─── body ends ─────────────▶ awaiting-verdict ──▶ clamd's verdict
 *     ├── past maxStreamBytes ─────────▶ hashing-rest ──────▶ unscannable (our limit)
 *     └── clamd speaks or goes away ───▶ clamd-spoke-early ─▶ hashing-rest ─▶ its verdict
 *
 * hashing-rest reads the rest of the body only to count and hash it. From any state a halt
 * (the caller's abort, no progress for timeoutMs), a broken source or socket, or a reply
 * that is not a verdict on this object throws ScanFailedError: never clean.
 */
type Phase =
  | { is: "sending" }
  | { is: "clamd-spoke-early" }
  | { is: "hashing-rest"; verdict: EarlyVerdict | "over-stream-limit" }
  | { is: "awaiting-verdict" };

/** Connects, then runs one scan to its report. */
export async function scanOverInstream(o: InstreamSettings, body: ScanBody, signal?: AbortSignal): Promise<ScanReport> {
  const socket = await connect(o.host, o.port, o.connectTimeoutMs, signal);
  return new InstreamScan(o, socket, body, signal).run();
}

class InstreamScan {
  private phase: Phase = { is: "sending" };
  private readonly hash = createHash("sha256");
  private bytes = 0;
  private readonly reply = new ReplyBuffer();
  private socketError: Error | undefined;
  private socketGone = false;
  /** The caller's abort or the no-progress timeout: ends the scan in any phase. */
  private halted: ScanFailedError | undefined;
  /** The one wait in progress (see awaitUnless), woken by every socket event and by a halt. */
  private wake: (() => void) | null = null;
  private readonly o: InstreamSettings;
  private readonly socket: net.Socket;
  private readonly body: BodyReader;
  private readonly signal: AbortSignal | undefined;
  private readonly idle: NodeJS.Timeout;

  constructor(o: InstreamSettings, socket: net.Socket, body: ScanBody, signal?: AbortSignal) {
    this.o = o;
    this.socket = socket;
    this.signal = signal;
    this.idle = setTimeout(() => this.halt(new ScanFailedError("timeout", `no progress for ${o.timeoutMs} ms while scanning (clamd at ${o.host}:${o.port})`)), o.timeoutMs);
    signal?.addEventListener("abort", this.onAbort, { once: true });
    if (signal?.aborted) this.onAbort();
    // clamd's bytes are no progress: its one reply comes whole once it has decided, so a
    // reply that trickles without ending must not keep the scan alive past timeoutMs.
    socket.on("data", (d: Buffer) => {
      this.reply.add(d);
      this.wake?.();
    });
    socket.on("drain", () => {
      this.progress();
      this.wake?.();
    });
    socket.on("end", this.onGone);
    socket.on("close", this.onGone);
    socket.on("error", (e) => {
      this.socketError ??= e;
      this.onGone();
    });
    this.body = new BodyReader(body);
  }

  async run(): Promise<ScanReport> {
    try {
      this.socket.write(INSTREAM);
      await this.readBody();
      return await this.conclude();
    } finally {
      this.close();
    }
  }

  // --- conditions the waits stop on ---
  /** While sending: anything that means "stop feeding clamd and look". */
  private readonly mustLook = () => this.halted !== undefined || this.reply.started || this.socketGone;
  /** The reply is complete or cannot grow any more, or the scan is halted. */
  private readonly settled = () => this.halted !== undefined || this.reply.complete || this.socketGone;
  private readonly isHalted = () => this.halted !== undefined;

  private readonly onAbort = () => this.halt(abortError(this.signal!));
  private readonly onGone = () => {
    this.socketGone = true;
    this.wake?.();
  };
  private halt(err: ScanFailedError): void {
    this.halted ??= err;
    this.wake?.();
  }
  private progress(): void {
    this.idle.refresh();
  }

  /** sending and hashing-rest: the whole body, fed to clamd while it listens. */
  private async readBody(): Promise<void> {
    for (;;) {
      const chunk = await this.nextChunk();
      if (chunk === null) return;
      this.progress();
      if (chunk.length === 0) continue; // a zero-length frame would end the stream early
      this.hash.update(chunk);
      this.bytes += chunk.length;
      if (this.phase.is === "sending") await this.send(chunk);
    }
  }

  /** The next chunk, or null at the end. While sending, clamd speaking interrupts the wait. */
  private async nextChunk(): Promise<Buffer | null> {
    for (;;) {
      let r: IteratorResult<unknown> | typeof INTERRUPTED;
      try {
        r = await this.awaitUnless(this.body.next(), this.phase.is === "sending" ? this.mustLook : this.isHalted);
      } catch (err) {
        this.body.dropRead();
        throw new ScanFailedError("source", `reading the object failed: ${errCode(err)}`, { cause: err });
      }
      if (r === INTERRUPTED) {
        if (this.halted) throw this.halted;
        await this.clamdSpokeEarly(); // the same read is awaited again below
        continue;
      }
      this.body.took(r);
      return r.done ? null : toBuffer(r.value);
    }
  }

  /** sending: one body chunk as frames of at most chunkBytes, waiting while the socket is full. */
  private async send(chunk: Buffer): Promise<void> {
    if (this.bytes > this.o.maxStreamBytes) {
      this.phase = { is: "hashing-rest", verdict: "over-stream-limit" };
      this.socket.destroy();
      return;
    }
    for (let off = 0; off < chunk.length && this.phase.is === "sending"; off += this.o.chunkBytes) {
      this.writeFrame(chunk.subarray(off, Math.min(chunk.length, off + this.o.chunkBytes)));
      // Backpressure: never more than one chunk plus the socket's buffer in memory.
      await this.awaitUnless(undefined, () => !this.socket.writableNeedDrain || this.mustLook());
      if (this.halted) throw this.halted;
      if (this.mustLook()) await this.clamdSpokeEarly();
    }
  }

  private writeFrame(part: Buffer): void {
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(part.length, 0);
    this.socket.cork();
    this.socket.write(header);
    this.socket.write(part);
    this.socket.uncork();
  }

  /**
   * clamd-spoke-early: it sent something or went away before the terminator. Only a final
   * answer about this object (a find, or a limit it hit, as with StreamMaxLength) ends the
   * sending; "clean" before the terminator is no verdict on this object.
   */
  private async clamdSpokeEarly(): Promise<void> {
    if (this.halted) throw this.halted;
    this.phase = { is: "clamd-spoke-early" };
    await this.awaitUnless(undefined, this.settled);
    if (this.halted) throw this.halted;
    const raw = this.reply.text();
    if (raw.length === 0) throw this.socketFailure("before the end of the stream");
    const c = classifyClamdReply(raw);
    if (c.outcome === "error") throw new ScanFailedError(c.kind, c.message, { raw });
    if (c.outcome === "clean") throw new ScanFailedError("unknown_reply", "clamd reported clean before the stream ended", { raw });
    this.phase = { is: "hashing-rest", verdict: c };
    this.socket.destroy();
  }

  /** After the body: the answer hashing-rest already holds, or clamd's after the terminator. */
  private async conclude(): Promise<ScanReport> {
    const sha256 = this.hash.digest("hex");
    if (this.phase.is === "hashing-rest") {
      const { verdict } = this.phase;
      if (verdict !== "over-stream-limit") return report(verdict, this.bytes, sha256, this.reply.text());
      const reason = `the object (${this.bytes} bytes) is larger than the scanner's stream limit of ${this.o.maxStreamBytes} bytes: it was not scanned`;
      return { outcome: "unscannable", kind: "stream_limit_exceeded", reason, bytes: this.bytes, sha256, raw: "" };
    }
    this.phase = { is: "awaiting-verdict" };
    this.socket.write(TERMINATOR);
    this.progress();
    await this.awaitUnless(undefined, this.settled);
    if (this.halted) throw this.halted;
    const raw = this.reply.text();
    if (raw.length === 0) throw this.socketFailure("after the stream ended");
    const c = classifyClamdReply(raw);
    if (c.outcome === "error") throw new ScanFailedError(c.kind, c.message, { raw });
    // Strict: "clean" only with the reply's NUL terminator, i.e. a complete answer.
    if (c.outcome === "clean" && !this.reply.complete) throw new ScanFailedError("unknown_reply", "clamd's reply was cut short", { raw });
    return report(c, this.bytes, sha256, raw);
  }

  private socketFailure(what: string): ScanFailedError {
    const raw = this.reply.text();
    if (raw.length > 0) return new ScanFailedError("unknown_reply", `incomplete clamd reply ${what}`, { raw });
    if (!this.socketError) return new ScanFailedError("empty_reply", `clamd closed the connection without a reply ${what}`);
    const code = errCode(this.socketError);
    // clamd closes a stream past StreamMaxLength mid-transfer; name that suspicion.
    const hint = code === "EPIPE" || code === "ECONNRESET" ? ` after ${this.bytes} bytes (if the object is larger than clamd's StreamMaxLength, set maxStreamBytes to it)` : "";
    return new ScanFailedError("connection", `connection to clamd lost ${what}: ${code}${hint}`, { cause: this.socketError });
  }

  /**
   * `p`'s outcome (without `p`: nothing), or INTERRUPTED as soon as `stop()` holds; it is
   * checked now and at every wake. Scans wait for one thing at a time, so one slot holds
   * the waker. Why not Promise.race against a long-lived "stop" promise: each race attaches
   * a reaction to that promise which keeps the race's result, a body chunk, reachable until
   * it settles; racing every chunk that way retained every chunk (a 2 GB scan, 2 GB RSS).
   */
  private awaitUnless<T>(p: Promise<T> | undefined, stop: () => boolean): Promise<T | typeof INTERRUPTED> {
    if (stop()) return Promise.resolve(INTERRUPTED);
    return new Promise((resolve, reject) => {
      const waker = () => {
        if (!stop()) return;
        release();
        resolve(INTERRUPTED);
      };
      const release = () => {
        if (this.wake === waker) this.wake = null;
      };
      this.wake = waker;
      p?.then(
        (v) => {
          release();
          resolve(v);
        },
        (e: unknown) => {
          release();
          reject(e);
        },
      );
    });
  }

  private close(): void {
    clearTimeout(this.idle);
    this.signal?.removeEventListener("abort", this.onAbort);
    this.socket.destroy();
    if (!this.body.ended) this.body.abandon();
  }
}

/** What clamd sent on the socket; past MAX_REPLY_CHARS it is garbage anyway, so no more is kept. */
class ReplyBuffer {
  private readonly chunks: Buffer[] = [];
  private length = 0;
  /** The reply's NUL terminator arrived. */
  complete = false;
  get started(): boolean {
    return this.length > 0;
  }
  add(d: Buffer): void {
    if (this.length <= MAX_REPLY_CHARS) {
      this.chunks.push(d);
      this.length += d.length;
    }
    if (d.includes(0)) this.complete = true;
  }
  /** The reply without its trailing NULs and line ends. */
  text(): string {
    const raw = Buffer.concat(this.chunks).toString("utf8");
    let end = raw.length;
    while (end > 0 && (raw[end - 1] === "\0" || raw[end - 1] === "\n" || raw[end - 1] === "\r")) end--;
    return raw.slice(0, end);
  }
}

/** The body's iterator, whose pending read survives an interrupted wait. */
class BodyReader {
  private readonly iterator: AsyncIterator<unknown>;
  private pending: Promise<IteratorResult<unknown>> | undefined;
  ended = false;
  constructor(body: ScanBody) {
    this.iterator = (body as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }
  next(): Promise<IteratorResult<unknown>> {
    return (this.pending ??= this.iterator.next());
  }
  took(r: IteratorResult<unknown>): void {
    this.pending = undefined;
    if (r.done) this.ended = true;
  }
  dropRead(): void {
    this.pending = undefined;
  }
  /**
   * A Node stream's iterator destroys the stream on return(). Not awaited: an async
   * generator stuck inside an await only runs return() after that await settles, which
   * for a stalled source is never.
   */
  abandon(): void {
    this.pending?.catch(() => {});
    try {
      Promise.resolve(this.iterator.return?.()).catch(() => {});
    } catch {
      // the body is being abandoned; its own error is not ours to report
    }
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  // A string chunk means someone called setEncoding(): the bytes are already re-encoded
  // and the hash/scan would not be of the stored object.
  throw new TypeError(`scan body must yield bytes (Buffer/Uint8Array), got ${typeof chunk}`);
}

function report(c: Verdict, bytes: number, sha256: string, raw: string): ScanReport {
  switch (c.outcome) {
    case "clean":
      return { outcome: "clean", bytes, sha256, raw };
    case "infected":
      return { outcome: "infected", signature: c.signature, bytes, sha256, raw };
    case "unscannable":
      return { outcome: "unscannable", kind: c.kind, reason: c.reason, ...(c.signature ? { signature: c.signature } : {}), bytes, sha256, raw };
  }
}
