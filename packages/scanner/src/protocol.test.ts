/**
 * Protocol misbehaviour a real clamd cannot be made to produce on demand (empty replies,
 * garbage, hangs, resets, premature verdicts), played by a tiny fake TCP server. The rule
 * under test: none of it may ever come back as "clean".
 */
import net from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import v8 from "node:v8";
import vm from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { within } from "@intake/testkit";
import { createClamdScanner, ScanFailedError, type ScanReport } from "./index.ts";

type Handler = (socket: net.Socket, session: Session) => void;

/** Parses INSTREAM framing as clamd would. */
class Session {
  command = "";
  frames: number[] = [];
  received = 0; // payload bytes
  terminated = false;
  /** Settles when the client's connection is gone (the scanner closed or reset it). */
  closed: Promise<void> = Promise.resolve();
  private buf = Buffer.alloc(0);
  private need: number | null = null;
  onPayload: (n: number) => void = () => {};
  onTerminator: () => void = () => {};
  onCommand: (c: string) => void = () => {};
  feed(d: Buffer) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (!this.command) {
        const z = this.buf.indexOf(0);
        if (z < 0) return;
        this.command = this.buf.subarray(0, z).toString("latin1");
        this.buf = this.buf.subarray(z + 1);
        this.onCommand(this.command);
        if (this.command !== "zINSTREAM") return;
        continue;
      }
      if (this.terminated) return;
      if (this.need === null) {
        if (this.buf.length < 4) return;
        this.need = this.buf.readUInt32BE(0);
        this.buf = this.buf.subarray(4);
        if (this.need === 0) {
          this.terminated = true;
          this.onTerminator();
          return;
        }
        this.frames.push(this.need);
      }
      const take = Math.min(this.need, this.buf.length);
      if (take === 0) return;
      this.received += take;
      this.need -= take;
      this.buf = this.buf.subarray(take);
      this.onPayload(take);
      if (this.need === 0) this.need = null;
    }
  }
}

const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function fakeClamd(handler: Handler): Promise<{ port: number; sessions: Session[] }> {
  const sessions: Session[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    const session = new Session();
    session.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    sessions.push(session);
    handler(socket, session);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, sessions };
}

/** A well-behaved reader that answers `reply` after the terminator. */
const replyAfterTerminator =
  (reply: string | null, opts: { close?: boolean } = {}): Handler =>
  (socket, session) => {
    session.onTerminator = () => {
      if (reply !== null) socket.write(reply);
      if (opts.close !== false) socket.end();
    };
    socket.on("data", (d) => session.feed(d));
  };

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function expectScanFailure(p: Promise<ScanReport>, kind?: ScanFailedError["kind"]): Promise<ScanFailedError> {
  const err = await p.then(
    (r) => {
      throw new Error(`expected ScanFailedError, got report ${JSON.stringify(r)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ScanFailedError);
  const e = err as ScanFailedError;
  expect(e.code).toBe("scan_error");
  if (kind) expect(e.kind).toBe(kind);
  return e;
}

describe("INSTREAM framing", () => {
  it("frames chunks with 4-byte big-endian lengths, skips empty chunks, terminates", async () => {
    const { port, sessions } = await fakeClamd(replyAfterTerminator("stream: OK\0"));
    const scanner = createClamdScanner({ port, chunkBytes: 1000 });
    const a = randomBytes(2500);
    const b = randomBytes(10);
    const report = await scanner.scan(Readable.from([a, Buffer.alloc(0), new Uint8Array(b)]));
    expect(report).toEqual({ outcome: "clean", bytes: 2510, sha256: sha(Buffer.concat([a, b])), raw: "stream: OK" });
    expect(sessions[0]!.command).toBe("zINSTREAM");
    expect(sessions[0]!.frames).toEqual([1000, 1000, 500, 10]);
    expect(sessions[0]!.terminated).toBe(true);
  });

  it("an empty body still sends the command and the terminator", async () => {
    const { port, sessions } = await fakeClamd(replyAfterTerminator("stream: OK\0"));
    const report = await createClamdScanner({ port }).scan(Readable.from([]));
    expect(report).toMatchObject({ outcome: "clean", bytes: 0, sha256: sha(Buffer.alloc(0)) });
    expect(sessions[0]!.command).toBe("zINSTREAM");
    expect(sessions[0]!.frames).toEqual([]);
    expect(sessions[0]!.terminated).toBe(true);
  });

  it("accepts async iterables of Uint8Array", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("stream: Some.Sig FOUND\0"));
    async function* gen() {
      yield new TextEncoder().encode("abc");
      yield new TextEncoder().encode("def");
    }
    expect(await createClamdScanner({ port }).scan(gen())).toEqual({
      outcome: "infected",
      signature: "Some.Sig",
      bytes: 6,
      sha256: sha(Buffer.from("abcdef")),
      raw: "stream: Some.Sig FOUND",
    });
  });
});

describe("failures never read as clean", () => {
  it("empty reply (connection closed after the stream)", async () => {
    const { port } = await fakeClamd(replyAfterTerminator(null));
    await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")])), "empty_reply");
  });

  it("connection closed right after connect", async () => {
    const { port } = await fakeClamd((socket) => socket.destroy());
    const e = await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([randomBytes(1 << 20)])));
    expect(["connection", "empty_reply"]).toContain(e.kind);
  });

  it("garbage reply", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("HELLO THERE\0"));
    const e = await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")])), "unknown_reply");
    expect(e.raw).toBe("HELLO THERE");
  });

  it("binary garbage reply", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("\x01\x02\xff\0"));
    await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")])), "unknown_reply");
  });

  it("'stream: OK' cut short (no NUL terminator) is not clean", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("stream: OK"));
    await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")])), "unknown_reply");
  });

  it("a truncated reply is not clean", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("stream: O"));
    await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")])));
  });

  it("ERROR replies (other than the stream size limit)", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("stream: Can't allocate memory ERROR\0"));
    await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")])), "error_reply");
  });

  it("a hanging clamd times out", async () => {
    const { port } = await fakeClamd((socket, session) => socket.on("data", (d) => session.feed(d)));
    const t = Date.now();
    await expectScanFailure(createClamdScanner({ port, timeoutMs: 300 }).scan(Readable.from([Buffer.from("x")])), "timeout");
    expect(Date.now() - t).toBeLessThan(5_000);
  });

  it("a clamd that stops reading mid-stream times out (no progress)", async () => {
    const { port } = await fakeClamd((socket, session) => {
      socket.on("data", (d) => {
        session.feed(d);
        if (session.received > 256 * 1024) socket.pause();
      });
    });
    await expectScanFailure(
      createClamdScanner({ port, timeoutMs: 500 }).scan(Readable.from((function* () { for (let i = 0; i < 1024; i++) yield randomBytes(64 * 1024); })())),
      "timeout",
    );
  });

  it("a clamd that trickles a reply that never ends still times out (its bytes are no verdict, so no progress)", async () => {
    const timers: NodeJS.Timeout[] = [];
    const trickle = (socket: net.Socket) => timers.push(setInterval(() => socket.writable && socket.write("s"), 50));
    try {
      const after = await fakeClamd((socket, session) => {
        session.onTerminator = () => trickle(socket);
        socket.on("data", (d) => session.feed(d));
      });
      const early = await fakeClamd((socket, session) => {
        session.onPayload = () => session.received === 1 && trickle(socket);
        socket.on("data", (d) => session.feed(d));
      });
      for (const port of [after.port, early.port]) {
        const t = Date.now();
        const stalled = (async function* () {
          yield Buffer.from("x");
          if (port === early.port) await new Promise(() => {}); // the source stalls too
        })();
        await expectScanFailure(createClamdScanner({ port, timeoutMs: 300 }).scan(stalled), "timeout");
        expect(Date.now() - t).toBeLessThan(5_000);
      }
    } finally {
      timers.forEach(clearInterval);
    }
  }, 20_000);

  it("a reply split across packets is read whole", async () => {
    const split = (parts: string[]): Handler => (socket, session) => {
      session.onTerminator = () => parts.forEach((p, i) => setTimeout(() => socket.write(p), 40 * i));
      socket.on("data", (d) => session.feed(d));
    };
    const clean = await fakeClamd(split(["stream: ", "O", "K", "\0"]));
    expect(await createClamdScanner({ port: clean.port }).scan(Readable.from([Buffer.from("x")]))).toMatchObject({ outcome: "clean" });
    const found = await fakeClamd(split(["stream: Intake.Test", ".EICAR.UNOFFICIAL FO", "UND\0"]));
    expect(await createClamdScanner({ port: found.port }).scan(Readable.from([Buffer.from("x")]))).toMatchObject({ outcome: "infected", signature: "Intake.Test.EICAR.UNOFFICIAL" });
    // "OK" then an extra line in the same reply: not clean.
    const extra = await fakeClamd(split(["stream: OK\n", "stream: whatever\0"]));
    await expectScanFailure(createClamdScanner({ port: extra.port }).scan(Readable.from([Buffer.from("x")])), "unknown_reply");
  });

  it("connection reset mid-stream", async () => {
    const { port } = await fakeClamd((socket, session) => {
      socket.on("data", (d) => {
        session.feed(d);
        if (session.received > 512 * 1024) socket.resetAndDestroy();
      });
    });
    const e = await expectScanFailure(
      createClamdScanner({ port }).scan(Readable.from((function* () { for (let i = 0; i < 256; i++) yield randomBytes(64 * 1024); })())),
    );
    expect(["connection", "empty_reply"]).toContain(e.kind);
  });

  it("a 'clean' verdict before the stream ended is not clean", async () => {
    const { port } = await fakeClamd((socket, session) => {
      session.onPayload = () => {
        if (!socket.writableEnded) socket.end("stream: OK\0");
      };
      socket.on("data", (d) => session.feed(d));
    });
    const e = await expectScanFailure(
      createClamdScanner({ port }).scan(Readable.from((function* () { for (let i = 0; i < 64; i++) yield randomBytes(64 * 1024); })())),
    );
    expect(["unknown_reply", "connection"]).toContain(e.kind);
  });

  it("connection refused", async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const e = await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")])), "connect");
    expect(e.message).toContain("ECONNREFUSED");
  });

  it("abort signal", async () => {
    const { port } = await fakeClamd((socket, session) => socket.on("data", (d) => session.feed(d)));
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("shutdown")), 100);
    await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")]), { signal: ac.signal }), "aborted");
    const pre = new AbortController();
    pre.abort();
    await expectScanFailure(createClamdScanner({ port }).scan(Readable.from([Buffer.from("x")]), { signal: pre.signal }), "aborted");
  });

  it("abort while the source stalls", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("stream: OK\0"));
    const ac = new AbortController();
    async function* stalled() {
      yield Buffer.from("x");
      await new Promise(() => {}); // never
    }
    setTimeout(() => ac.abort(), 100);
    await expectScanFailure(createClamdScanner({ port }).scan(stalled(), { signal: ac.signal }), "aborted");
  });

  it("a failing source", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("stream: OK\0"));
    const body = new Readable({ read() {} });
    body.push(Buffer.from("partial"));
    setTimeout(() => body.destroy(new Error("socket hang up")), 50);
    const e = await expectScanFailure(createClamdScanner({ port }).scan(body), "source");
    expect(e.message).toContain("socket hang up");
  });

  it("string chunks are refused", async () => {
    const { port } = await fakeClamd(replyAfterTerminator("stream: OK\0"));
    const body = Readable.from(["text"], { objectMode: true });
    await expect(createClamdScanner({ port }).scan(body)).rejects.toThrow(TypeError);
  });
});

describe("limits", () => {
  it("clamd's early size-limit reply -> unscannable, with bytes and sha256 of the whole body", async () => {
    // Like clamd, answer as soon as the limit is crossed; unlike clamd, keep draining so
    // no reset races the reply (the real clamd case is covered in clamd.test.ts).
    const { port } = await fakeClamd((socket, session) => {
      session.onPayload = () => {
        if (session.received > 100_000 && !socket.writableEnded) socket.end("INSTREAM size limit exceeded. ERROR\0");
      };
      socket.on("data", (d) => session.feed(d));
    });
    const parts = Array.from({ length: 40 }, () => randomBytes(64 * 1024));
    const report = await createClamdScanner({ port }).scan(Readable.from(parts));
    expect(report).toMatchObject({ outcome: "unscannable", kind: "stream_limit_exceeded", bytes: 40 * 64 * 1024, sha256: sha(Buffer.concat(parts)) });
    expect(report.raw).toBe("INSTREAM size limit exceeded. ERROR");
  });

  it("maxStreamBytes: stops feeding clamd, reports unscannable, still hashes everything", async () => {
    const { port, sessions } = await fakeClamd(replyAfterTerminator("stream: OK\0"));
    const parts = Array.from({ length: 10 }, () => randomBytes(1000));
    const scanner = createClamdScanner({ port, maxStreamBytes: 4500 });
    const report = await scanner.scan(Readable.from(parts));
    expect(report).toMatchObject({ outcome: "unscannable", kind: "stream_limit_exceeded", bytes: 10_000, sha256: sha(Buffer.concat(parts)) });
    // Once the scanner has let go of the connection, nothing more can arrive.
    await within(sessions[0]!.closed, { timeoutMs: 5000, message: "the scanner to close its clamd connection after the limit" });
    expect(sessions[0]!.received).toBeLessThanOrEqual(4500);
    expect(sessions[0]!.terminated).toBe(false);
    // exactly at the limit is scanned
    const exact = await scanner.scan(Readable.from([randomBytes(4500)]));
    expect(exact.outcome).toBe("clean");
  });

  it("respects backpressure: never reads far ahead of what clamd consumed", async () => {
    let serverReceived = 0;
    const { port } = await fakeClamd((socket, session) => {
      session.onTerminator = () => socket.end("stream: OK\0");
      session.onPayload = (n) => (serverReceived += n);
      socket.pause();
      // a slow clamd: reads in bursts
      const timer = setInterval(() => {
        socket.resume();
        setTimeout(() => socket.pause(), 5);
      }, 40);
      socket.on("close", () => clearInterval(timer));
      socket.on("data", (d) => session.feed(d));
    });
    const total = 96 * 1024 * 1024;
    const chunk = Buffer.alloc(256 * 1024, 7);
    let produced = 0;
    let maxLead = 0;
    async function* source() {
      while (produced < total) {
        maxLead = Math.max(maxLead, produced - serverReceived);
        produced += chunk.length;
        yield chunk;
      }
    }
    const report = await createClamdScanner({ port }).scan(source());
    expect(report).toMatchObject({ outcome: "clean", bytes: total });
    // Kernel socket buffers on loopback can hold a few MiB; without backpressure the lead
    // would reach most of the 96 MiB.
    expect(maxLead).toBeLessThan(24 * 1024 * 1024);
  }, 120_000);
});

describe("memory", () => {
  it("does not retain chunks already sent (a 2 GiB object must scan in small RSS)", async () => {
    // Regression: racing every chunk against a long-lived `stop` promise kept every chunk
    // reachable until the scan ended.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const { port } = await fakeClamd(replyAfterTerminator("stream: OK\0"));
    const early: WeakRef<Buffer>[] = [];
    let aliveAtCheck = -1;
    async function* source() {
      for (let i = 0; i < 400; i++) {
        if (i === 300) {
          await new Promise((r) => setImmediate(r));
          gc();
          aliveAtCheck = early.filter((w) => w.deref() !== undefined).length;
        }
        const b = Buffer.alloc(64 * 1024, i & 0xff);
        if (i < 50) early.push(new WeakRef(b));
        yield b;
      }
    }
    expect(await createClamdScanner({ port }).scan(source())).toMatchObject({ outcome: "clean", bytes: 400 * 64 * 1024 });
    expect(aliveAtCheck).toBe(0);
  });
});

describe("ping and version", () => {
  const answer = (reply: string): Handler => (socket) => {
    socket.on("data", () => socket.end(reply));
  };

  it("ping true only on PONG", async () => {
    expect(await createClamdScanner({ port: (await fakeClamd(answer("PONG\0"))).port }).ping()).toBe(true);
    expect(await createClamdScanner({ port: (await fakeClamd(answer("NOPE\0"))).port }).ping()).toBe(false);
    expect(await createClamdScanner({ port: (await fakeClamd(answer(""))).port }).ping()).toBe(false);
    const hang = await fakeClamd(() => {});
    const t = Date.now();
    expect(await createClamdScanner({ port: hang.port, connectTimeoutMs: 300 }).ping()).toBe(false);
    expect(Date.now() - t).toBeLessThan(3_000);
  });

  it("ping sends zPING", async () => {
    const { port, sessions } = await fakeClamd((socket, session) => {
      session.onCommand = (c) => socket.end(c === "zPING" ? "PONG\0" : "UNKNOWN COMMAND\0");
      socket.on("data", (d) => session.feed(d));
    });
    expect(await createClamdScanner({ port }).ping()).toBe(true);
    expect(sessions[0]!.command).toBe("zPING");
  });

  it("version parses, and fails loudly on nonsense", async () => {
    expect(await createClamdScanner({ port: (await fakeClamd(answer("ClamAV 1.4.6/27441/Sat Nov 21 09:25:02 2026\0"))).port }).version()).toEqual({
      engine: "ClamAV 1.4.6",
      signatures: "27441",
      signaturesDate: "Sat Nov 21 09:25:02 2026",
      raw: "ClamAV 1.4.6/27441/Sat Nov 21 09:25:02 2026",
    });
    await expect(createClamdScanner({ port: (await fakeClamd(answer("garbage\0"))).port }).version()).rejects.toBeInstanceOf(ScanFailedError);
    await expect(createClamdScanner({ port: (await fakeClamd(answer(""))).port }).version()).rejects.toMatchObject({ kind: "empty_reply" });
    await expect(createClamdScanner({ port: (await fakeClamd(() => {})).port, connectTimeoutMs: 300 }).version()).rejects.toMatchObject({ kind: "timeout" });
  });
});
