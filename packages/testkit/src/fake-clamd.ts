import net from "node:net";

export interface FakeClamd {
  port: number;
  close(): Promise<void>;
}

/**
 * A clamd that answers only PING and VERSION (NUL-terminated z-commands, `man clamd`), with
 * the VERSION line the test chooses: what a deployment with or without the official
 * database says, without needing that database on this machine. Anything else (INSTREAM)
 * is answered with an ERROR so it can never pass for a scan.
 */
export async function startFakeClamd(versionLine: string): Promise<FakeClamd> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(0);
      if (end < 0) return;
      const command = buffered.subarray(0, end).toString("latin1");
      const reply = command === "zPING" ? "PONG" : command === "zVERSION" ? versionLine : "UNKNOWN COMMAND";
      socket.end(`${reply}\0`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
