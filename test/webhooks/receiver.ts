import http from "node:http";
import type { AddressInfo } from "node:net";
import { once } from "node:events";

/**
 * A local webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every
 * request (raw body and headers, as a receiver would verify them) and answers as each
 * path's behaviour says.
 */
export interface ReceivedRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

export type Behaviour = (n: number) => { status: number; headers?: Record<string, string>; body?: string };

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  on(path: string, behaviour: Behaviour): void;
  to(path: string): ReceivedRequest[];
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const behaviours = new Map<string, Behaviour>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0]!;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      requests.push({ path, headers, body: Buffer.concat(chunks).toString("utf8"), at: Date.now() });
      const n = requests.filter((r) => r.path === path).length;
      const answer: ReturnType<Behaviour> = (behaviours.get(path) ?? (() => ({ status: 200, body: "ok" })))(n);
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? "");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    on: (path, b) => void behaviours.set(path, b),
    to: (path) => requests.filter((r) => r.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
