import { EventEmitter } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A forwarding HTTP proxy that reports every request it forwards ("request" event with
 * method, url and headers, before the upstream answers), so a test can wait for a client
 * to be inside a call (an SQS long poll, say) instead of sleeping and hoping it is.
 */
export interface HttpTap extends EventEmitter {
  endpoint: string;
  close(): Promise<void>;
}

export async function startHttpTap(upstream: string): Promise<HttpTap> {
  const target = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true });
  const tap = new EventEmitter() as HttpTap;
  const server = http.createServer((req, res) => {
    tap.emit("request", { method: req.method, url: req.url, headers: req.headers });
    const out = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    });
    out.on("error", (err) => {
      if (!res.headersSent) res.writeHead(502).end(err.message);
      else res.destroy(err);
    });
    res.on("close", () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  tap.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tap.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    agent.destroy();
  };
  return tap;
}
