import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser } from "../support/browser.ts";
import { eicar, png } from "../pipeline/fixtures.ts";
import { MiB, startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

/**
 * Uppy's previous major, 5.x (@uppy/core 5, @uppy/aws-s3 5, @uppy/dashboard 5), beside the 6.x
 * the demo page bundles: its own node_modules (test/uppy5, installed by infra/bin/provision.sh),
 * bundled here with the root's esbuild and driven in Debian's chromium against the same
 * Companion-style routes. 5.x's option is `endpoint` (6.x: companionEndpoint); it calls the
 * same paths, with an Accept header (CORS-safelisted: no preflight for its GETs) and
 * credentials only same-origin, and sends no size either: Intake learns it on arrival.
 */
describe("Uppy 5.x in a real browser against the Uppy routes", () => {
  let s: PipelineStack;
  let browser: Browser;
  let page: Page;
  let js: string;
  let pageServer: Server;

  beforeAll(async () => {
    if (!existsSync(fileURLToPath(new URL("../uppy5/node_modules/@uppy/core/package.json", import.meta.url)))) {
      throw new Error("test/uppy5 is not installed: run infra/bin/test (provision.sh installs it) or npm ci --prefix test/uppy5");
    }
    const bundle = await build({
      entryPoints: [fileURLToPath(new URL("../uppy5/page.js", import.meta.url))],
      bundle: true,
      write: false,
      format: "iife",
      platform: "browser",
      target: "es2022",
      logLevel: "silent",
    });
    js = bundle.outputFiles[0]!.text;
    // The page from a server of its own (another origin than the API's, as an application's
    // page would be; a real loopback server, since chromium keeps a page of unknown address
    // space from reaching loopback ones): the Uppy routes then answer it through CORS.
    pageServer = createServer((req, res) => {
      const script = req.url === "/page.js";
      res.writeHead(200, { "content-type": script ? "text/javascript" : "text/html" });
      res.end(script ? js : '<!doctype html><div id="dashboard"></div><script src="/page.js"></script>');
    });
    await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
    const pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", storageCorsOrigins: "*", env: { CORS_ORIGINS: pageOrigin } });
    await s.startWorker();
    browser = await launchBrowser();
    page = await browser.newPage();
    const failures: string[] = [];
    page.on("pageerror", (err) => failures.push(err.message));
    await page.goto(`${pageOrigin}/index.html`);
    const res = await fetch(`${s.apiUrl}/v1/upload-sessions`, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: "{}" });
    const { token } = (await res.json()) as { token: string };
    // fauxqs takes bodies up to 11 MiB: the page sends files above 8 MiB as multipart.
    await page.evaluate(([endpoint, above]) => (globalThis as any).startUppy(endpoint, above), [`${s.apiUrl}/v1/uppy/${token}`, 8 * MiB] as const);
    expect(failures).toEqual([]);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
    await new Promise((resolve) => pageServer?.close(resolve));
  });

  it("is the previous major, from its own node_modules", async () => {
    const versions = await page.evaluate(() => (globalThis as any).uppyVersions);
    expect(versions.core).toMatch(/^5\./);
    expect(versions.awsS3).toMatch(/^5\./);
  });

  it("uploads a clean PNG (form POST, verified), EICAR (quarantined) and a 12 MiB file through the multipart routes (verified, bytes identical)", async () => {
    const big = Buffer.alloc(12 * MiB);
    let x = 7;
    for (let i = 0; i < big.length; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      big[i] = i % 64 === 63 ? 0x0a : 0x61 + (x % 26);
    }
    const files = [
      { name: "pixel.png", type: "image/png", bytes: png(8, 8, 5) },
      { name: "eicar.txt", type: "text/plain", bytes: eicar() },
      { name: "large.txt", type: "text/plain", bytes: big },
    ];
    const results = (await page.evaluate((f) => (globalThis as any).uploadFiles(f), files.map((f) => ({ name: f.name, type: f.type, base64: f.bytes.toString("base64") })))) as { name: string; key?: string; error?: string }[];
    expect(results.filter((r) => r.error)).toEqual([]);
    const idOf = (name: string) => results.find((r) => r.name === name)!.key!.split("/").pop()!;

    const pixel = await s.waitFor(idOf("pixel.png"), ["verified", "quarantined"], 45_000);
    expect(pixel).toMatchObject({ status: "verified", multipart: null, declaredSize: null, storedSize: files[0]!.bytes.length });
    const virus = await s.waitFor(idOf("eicar.txt"), ["verified", "quarantined"], 45_000);
    expect(virus).toMatchObject({ status: "quarantined", reason: "malware" });
    const large = await s.waitFor(idOf("large.txt"), ["verified", "quarantined"], 45_000);
    expect(large).toMatchObject({ status: "verified", declaredSize: null, storedSize: 12 * MiB, multipart: { partSize: 5 * MiB } });
    const got = await s.download(large.id);
    expect(createHash("sha256").update(got.bytes).digest("hex")).toBe(createHash("sha256").update(big).digest("hex"));
  }, 120_000);
});
