import { createHash } from "node:crypto";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDevKey } from "@intake/api";
import { ApiKeyRepository } from "@intake/db";
import { launchBrowser } from "../support/browser.ts";
import { eicar, png } from "../pipeline/fixtures.ts";
import { MiB, startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

/**
 * The demo page as a person uses it: Debian's chromium opens GET /demo on the whole stack
 * (API, fauxqs with its bucket CORS, the real workers, clamd), the page gets an upload
 * session from POST /demo/session and hands files to Uppy 6 (Dashboard + AWS S3, bundled
 * from node_modules), which talks to the Companion-style routes and straight to storage. The
 * page then shows each file's verdict; the test reads it there, as the person would.
 */
describe("the Uppy demo page in a real browser", () => {
  let s: PipelineStack;
  let browser: Browser;
  let page: Page;
  let devKey: string;

  beforeAll(async () => {
    s = await startPipelineStack({
      storage: "fauxqs",
      database: "sqlite",
      // The page sets nothing but companionEndpoint: no size, Uppy's own choice of method and
      // part size, whatever MULTIPART_THRESHOLD_BYTES and PART_SIZE_BYTES (16 MiB) say.
      env: { NODE_ENV: "development", DEMO_PAGE: "true", MULTIPART_THRESHOLD_BYTES: String(8 * MiB) },
      // The page (the API's origin, on a port chosen at start) uploads to storage directly.
      storageCorsOrigins: "*",
    });
    await s.startWorker();
    devKey = await ensureDevKey(new ApiKeyRepository(s.database.db), { dataDir: s.config.dataDir });
    browser = await launchBrowser();
    page = await browser.newPage();
    const failures: string[] = [];
    page.on("pageerror", (err) => failures.push(err.message));
    await page.goto(`${s.apiUrl}/demo`);
    await page.locator(".uppy-Dashboard").waitFor({ timeout: 15_000 });
    expect(failures).toEqual([]);
    // The user's own choice, not Intake's: Uppy's default sends files up to 100 MiB as one
    // form POST, which fauxqs (11 MiB bodies) cannot take; Intake accepts either way.
    await page.evaluate((threshold) => {
      const w = globalThis as unknown as { demoUppy: { getPlugin(id: string): { setOptions(o: object): void } } };
      w.demoUppy.getPlugin("AwsS3").setOptions({ shouldUseMultipart: (file: { size: number | null }) => (file.size ?? 0) > threshold });
    }, 8 * MiB);
  });

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  /** Drops files into the Dashboard's input, presses its upload button, waits for each verdict on the page. */
  async function uploadThroughPage(files: { name: string; mimeType: string; buffer: Buffer }[]): Promise<Map<string, { status: string; id: string }>> {
    await page.locator("input.uppy-Dashboard-input[type=file]").first().setInputFiles(files);
    await page.locator(".uppy-StatusBar-actionBtn--upload").click();
    const out = new Map<string, { status: string; id: string }>();
    for (const f of files) {
      const row = page.locator(`#verdicts li[data-name="${f.name}"]:is([data-status=verified],[data-status=quarantined],[data-status=rejected],[data-status=refused])`);
      await row.waitFor({ timeout: 45_000 });
      out.set(f.name, { status: (await row.getAttribute("data-status"))!, id: (await row.getAttribute("data-upload-id")) ?? "" });
    }
    return out;
  }

  it("serves the page with Uppy bundled locally: no request leaves for another host but storage", async () => {
    const res = await fetch(`${s.apiUrl}/demo`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/);
    const js = await fetch(`${s.apiUrl}/demo/assets/demo.js`);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    const css = await fetch(`${s.apiUrl}/demo/assets/uppy.css`);
    expect(await css.text()).toContain(".uppy-Dashboard");
  });

  it("uploads a clean PNG (verified), EICAR (quarantined) and a 12 MiB file through the multipart routes (verified, bytes identical)", async () => {
    const big = Buffer.alloc(12 * MiB);
    // Text of pseudo-random words: a real text/plain file that is identical only if every byte is.
    let x = 1;
    for (let i = 0; i < big.length; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      big[i] = i % 64 === 63 ? 0x0a : 0x61 + (x % 26);
    }
    const statusReads: string[] = [];
    page.on("request", (r) => {
      if (r.method() === "GET" && new URL(r.url()).pathname.startsWith("/v1/uploads/")) statusReads.push(r.url());
    });
    const verdicts = await uploadThroughPage([
      { name: "pixel.png", mimeType: "image/png", buffer: png(8, 8, 3) },
      { name: "eicar.txt", mimeType: "text/plain", buffer: eicar() },
      { name: "large.txt", mimeType: "text/plain", buffer: big },
    ]);
    expect(Object.fromEntries([...verdicts].map(([k, v]) => [k, v.status]))).toEqual({ "pixel.png": "verified", "eicar.txt": "quarantined", "large.txt": "verified" });

    // The PNG went as Uppy 6 sends single files: a form POST (no multipart upload behind it),
    // with no size declared: learned when it arrived.
    expect(await s.uploads.get("dev", verdicts.get("pixel.png")!.id)).toMatchObject({ multipart: null, declaredSize: null, storedSize: png(8, 8, 3).length });
    const large = await s.uploads.get("dev", verdicts.get("large.txt")!.id);
    // Multipart: Uppy asked for part URLs (of its own 5 MiB), not a form POST; the size arrived with the object.
    expect(large).toMatchObject({ declaredSize: null, storedSize: 12 * MiB, multipart: { partSize: 5 * MiB } });
    const download = await fetch(`${s.apiUrl}/v1/uploads/${large!.id}/download`, { headers: { authorization: `Bearer ${devKey}` }, redirect: "manual" });
    expect(download.status).toBe(302);
    const bytes = Buffer.from(await (await fetch(download.headers.get("location")!)).arrayBuffer());
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(createHash("sha256").update(big).digest("hex"));
    const eicarRow = await s.uploads.get("dev", verdicts.get("eicar.txt")!.id);
    expect(eicarRow!.reason).toBe("malware");
    // The verdicts came from the long-poll (each read held until the verdict), not a poll loop.
    expect(statusReads.length).toBeGreaterThanOrEqual(3);
    expect(statusReads.every((u) => new URL(u).searchParams.get("wait") === "20")).toBe(true);
    expect(await page.locator('#verdicts li[data-name="eicar.txt"]').textContent()).toContain("malware");
  });
});
