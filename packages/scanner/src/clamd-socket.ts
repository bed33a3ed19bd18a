/**
 * The socket side of talking to clamd: connecting (with a timeout and an AbortSignal) and
 * the one-command, one-reply exchanges (PING, VERSION). INSTREAM lives in instream.ts.
 */
import net from "node:net";
import { ScanFailedError } from "./errors.ts";
import { MAX_REPLY_CHARS } from "./reply.ts";

export function errCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code ?? e?.message ?? String(err);
}

export function abortError(signal: AbortSignal): ScanFailedError {
  return new ScanFailedError("aborted", "scan aborted by the caller", { cause: signal.reason });
}

export function connect(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<net.Socket> {
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
export async function command(host: string, port: number, timeoutMs: number, name: string): Promise<string> {
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
