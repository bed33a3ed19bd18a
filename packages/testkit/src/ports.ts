import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";

/** A loopback port nothing listens on right now: bound, read, released. */
export async function freePort(): Promise<number> {
  const srv = createServer().listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as AddressInfo;
  srv.close();
  await once(srv, "close");
  return port;
}
