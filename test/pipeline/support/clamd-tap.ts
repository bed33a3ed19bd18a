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
  close(): Promise<void>;
}

export async function startClamdTap(target: { host: string; port: number }, keepBytes = 256 * 1024): Promise<ClamdTap> {
  const sent: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
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
    upstream.on("error", drop).on("close", drop);
    client.on("data", (chunk: Buffer) => {
      if (size < keepBytes) {
        kept.push(Buffer.from(chunk.subarray(0, keepBytes - size)));
        size += Math.min(chunk.length, keepBytes - size);
      }
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    scansOf: (marker) => sent.filter((k) => Buffer.concat(k).includes(marker)).length,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
