import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClamdScanner } from "@intake/scanner";
import { eicar, zip } from "./fixtures.ts";
import { freePort } from "@intake/test";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * clamd inflates a deflated ZIP member only up to MaxFileSize and answers OK about what it
 * saw, with no alert even with AlertExceedsMax (cli_unzip "trimming output size to
 * maxfilesize"). A few kilobytes of ZIP can hide malware behind gigabytes of zeros. This
 * runs a clamd of its own with MaxFileSize 1 MiB (the shared one has 2 GiB), proves that
 * clamd alone calls such an archive clean, and that the pipeline quarantines it anyway.
 */
const UP = fileURLToPath(new URL("../../infra/clamd/up.sh", import.meta.url));
const DOWN = fileURLToPath(new URL("../../infra/clamd/down.sh", import.meta.url));
const MiB = 1024 * 1024;


describe("ZIP members that clamd would cut short", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "intake-clamd-low-"));
  const clamdEnv = { ...process.env, DATA_DIR: dataDir, MAX_UPLOAD_BYTES: String(MiB), CLAMD_DATABASE: "test" };
  let port: number;
  let s: PipelineStack;
  // 3 MiB of zeros, then EICAR, in one deflated member: a ~3 KiB archive.
  const bomb = zip([{ name: "report.bin", data: Buffer.concat([Buffer.alloc(3 * MiB), eicar()]) }], { deflate: true });

  beforeAll(async () => {
    port = await freePort();
    execFileSync("bash", [UP], { env: { ...clamdEnv, CLAMD_PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
    s = await startPipelineStack({
      storage: "fauxqs",
      database: "sqlite",
      env: { CLAMD_PORT: String(port), MAX_UPLOAD_BYTES: String(MiB), CLAMD_MAX_FILE_SIZE: String(MiB), CLAMD_MAX_SCAN_SIZE: String(4 * MiB) },
    });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    execFileSync("bash", [DOWN], { env: clamdEnv, stdio: "ignore" });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("clamd alone reads the archive as clean (the hole), and finds EICAR in a small one", async () => {
    const scanner = createClamdScanner({ port });
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(await scanner.scan(Readable.from([bomb]))).toMatchObject({ outcome: "clean" });
    const small = zip([{ name: "report.bin", data: Buffer.concat([Buffer.alloc(1000), eicar()]) }], { deflate: true });
    expect(await scanner.scan(Readable.from([small]))).toMatchObject({ outcome: "infected" });
  });

  it("the pipeline quarantines it as unscannable, naming the member", async () => {
    const { id } = await s.upload(bomb, { contentType: "application/zip" });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "quarantined", reason: "unscannable" });
    expect(done.reasonDetail).toContain('"report.bin"');
  });

  it("still verifies a deflated archive within the limits", async () => {
    const fine = zip([{ name: "notes.txt", data: "nothing to see here\n".repeat(20_000) }], { deflate: true });
    const { id } = await s.upload(fine, { contentType: "application/zip" });
    expect((await s.waitFor(id, ["verified", "quarantined"])).status).toBe("verified");
  });
});
