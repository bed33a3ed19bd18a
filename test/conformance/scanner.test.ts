import { createClamdScanner } from "@intake/scanner";
import { freePort, PROJECT_CLAMD, projectSignatures } from "@intake/test";
import { startClamdProxy, type ClamdProxy } from "../pipeline/support/clamd-proxy.ts";
import { scannerContract } from "./scanner-contract.ts";

/**
 * The scanner contract on the project's clamd (infra/clamd/up.sh, started by the setup)
 * directly, and through the TCP proxy the pipeline tests cut to play a dying clamd.
 */
const CLAMD = { host: PROJECT_CLAMD.host, port: PROJECT_CLAMD.port };
const signatures = projectSignatures;
const unreachable = async () => createClamdScanner({ port: await freePort(), connectTimeoutMs: 2000 });

scannerContract(
  "clamd, direct",
  async () => {
    // Mid-scan failure without stopping the shared daemon: a proxy only this test's
    // connection goes through, cut once, then the direct scanner is used again.
    let proxy: ClamdProxy | null = null;
    return {
      scanner: createClamdScanner({ ...CLAMD, timeoutMs: 60_000 }),
      limitedTo: (bytes) => createClamdScanner({ ...CLAMD, timeoutMs: 60_000, maxStreamBytes: bytes }),
      failingAfter: async (bytes) => {
        proxy = await startClamdProxy(CLAMD);
        return { scanner: createClamdScanner({ port: proxy.port, timeoutMs: 60_000 }), cut: proxy.cutAfter(bytes) };
      },
      heal: async () => {
        await proxy?.close();
        proxy = null;
      },
      unreachable,
      stop: async () => {
        await proxy?.close();
      },
    };
  },
  signatures,
);

scannerContract(
  "clamd behind the test proxy (test/pipeline/support/clamd-proxy.ts)",
  async () => {
    const proxy = await startClamdProxy(CLAMD);
    const scanner = createClamdScanner({ port: proxy.port, timeoutMs: 60_000 });
    return {
      scanner,
      limitedTo: (bytes) => createClamdScanner({ port: proxy.port, timeoutMs: 60_000, maxStreamBytes: bytes }),
      failingAfter: async (bytes) => ({ scanner, cut: proxy.cutAfter(bytes) }),
      heal: () => proxy.restore(),
      unreachable: async () => {
        // The proxy itself refusing connections: what a client sees while clamd is down.
        const down = await startClamdProxy(CLAMD);
        down.cut();
        return createClamdScanner({ port: down.port, connectTimeoutMs: 2000 });
      },
      stop: () => proxy.close(),
    };
  },
  signatures,
);
