import net from "node:net";

/**
 * A TCP proxy in front of a real clamd that keeps what each connection sent it (the first
 * `keepBytes` of it): a test sees which bytes clamd was really asked about, without
 * replacing clamd. INSTREAM frames a body as 4-byte length prefixes before chunks of up to
 * 1 MiB, so a marker placed at the start of a file is found whole in the first chunk.
 */
export interface ClamdTap {
  port: number;
  /** How many connections so far carried `marker` (a scan of bytes that contain it). */
  scansOf(marker: Buffer | string): number;
  /**
   * Holds clamd's reply to the next connection that carries `marker` (clamd has scanned it,
   * the pipeline has not heard): `held` settles once a reply is held, `release()` sends it.
   */
  holdReply(marker: Buffer | string): { held: Promise<void>; release(): void };
  close(): Promise<void>;
}

export async function startClamdTap(target: { host: string; port: number }, keepBytes = 256 * 1024): Promise<ClamdTap> {
  const sent: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const holds: { marker: Buffer | string; onHeld: () => void; released: Promise<void> }[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    const kept: Buffer[] = [];
    let size = 0;
    sent.push(kept);
    for (const s of [client, upstream]) sockets.add(s);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop);
    client.on("data", (chunk: Buffer) => {
      if (size < keepBytes) {
        kept.push(Buffer.from(chunk.subarray(0, keepBytes - size)));
        size += Math.min(chunk.length, keepBytes - size);
      }
    });
    client.pipe(upstream);
    let reply: Promise<void> | null = null;
    upstream.on("data", (chunk: Buffer) => {
      if (reply === null) {
        const at = holds.findIndex((h) => Buffer.concat(kept).includes(h.marker));
        const hold = at >= 0 ? holds.splice(at, 1)[0]! : null;
        reply = hold ? (hold.onHeld(), hold.released) : Promise.resolve();
      }
      void reply.then(() => client.write(chunk));
    });
    // clamd closes after its reply: the client ends only once a held reply was sent.
    upstream.on("close", () => void (reply ?? Promise.resolve()).then(() => client.end()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    scansOf: (marker) => sent.filter((k) => Buffer.concat(k).includes(marker)).length,
    holdReply: (marker) => {
      let onHeld!: () => void;
      let release!: () => void;
      const held = new Promise<void>((r) => (onHeld = r));
      holds.push({ marker, onHeld, released: new Promise<void>((r) => (release = r)) });
      return { held, release: () => release() };
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
