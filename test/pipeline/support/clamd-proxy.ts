import net from "node:net";

/**
 * A TCP proxy in front of the shared clamd (127.0.0.1:3310) that a test can cut: "clamd
 * stopped" for this test only, without stopping the daemon every other test file uses.
 * cut() resets every open connection (what a client sees when clamd dies mid-scan) and
 * refuses new ones (what it sees while clamd is down) until restore(). It can also
 * throttle the client->clamd direction so a scan lasts long enough to be interrupted.
 */
export interface ClamdProxy {
  port: number;
  /** Bytes forwarded to clamd so far. */
  readonly forwarded: number;
  cut(): void;
  /** Cut as soon as `bytes` more have been forwarded (i.e. in the middle of a scan). */
  cutAfter(bytes: number): Promise<void>;
  restore(): Promise<void>;
  /** Limit client->clamd to this many bytes per second (0: unlimited). */
  throttle(bytesPerSecond: number): void;
  close(): Promise<void>;
}

export async function startClamdProxy(target = { host: "127.0.0.1", port: 3310 }): Promise<ClamdProxy> {
  const sockets = new Set<net.Socket>();
  let forwarded = 0;
  let rate = 0;
  let server: net.Server;
  let port = 0;
  let cutAt: { at: number; done: () => void } | null = null;

  const cutNow = () => {
    for (const s of sockets) s.resetAndDestroy();
    sockets.clear();
    server.close();
  };

  const onConnection = (client: net.Socket) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
    upstream.pipe(client);
    client.on("data", (chunk: Buffer) => {
      forwarded += chunk.length;
      if (cutAt && forwarded >= cutAt.at) {
        const done = cutAt.done;
        cutAt = null;
        cutNow();
        done();
        return;
      }
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once("drain", () => client.resume());
      }
      if (rate > 0) {
        client.pause();
        setTimeout(() => client.resume(), (chunk.length / rate) * 1000);
      }
    });
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer(onConnection);
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  await listen();

  return {
    get port() {
      return port;
    },
    get forwarded() {
      return forwarded;
    },
    cut: cutNow,
    cutAfter: (bytes) => new Promise<void>((resolve) => (cutAt = { at: forwarded + bytes, done: resolve })),
    restore: async () => {
      if (!server.listening) await listen();
    },
    throttle: (bps) => {
      rate = bps;
    },
    close: async () => {
      cutNow();
    },
  };
}
