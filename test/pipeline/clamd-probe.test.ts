import net from "node:net";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, createLogger } from "@intake/runtime";
import { createClamdScanner, encryptedZipProbe, probeClamdLimits, ScanFailedError, withLimitsProbe } from "@intake/scanner";
import { ScannerMisconfiguredError, startWorker } from "@intake/worker";
import { startSmallClamd, type SmallClamd } from "../support/small-clamd.ts";
import { eicar } from "./fixtures.ts";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The configuration agrees with itself (packages/runtime); these prove the worker also
 * checks that clamd really behaves so, and that the API refuses what cannot be scanned.
 */
const MiB = 1024 * 1024;

describe("clamd limits probe", () => {
  let clamd: SmallClamd;
  beforeAll(async () => {
    // The variant: clamd.conf's own defaults for the encryption alerts (both "no").
    clamd = await startSmallClamd({ maxFileSize: MiB }, { plain: true, conf: { AlertEncrypted: "no", AlertEncryptedArchive: "no" } });
  }, 180_000);
  afterAll(() => clamd?.close());

  it("passes against clamd as infra/clamd configures it", async () => {
    const r = await probeClamdLimits(createClamdScanner({ port: clamd.port }), { maxFileSize: MiB });
    expect(r).toMatchObject({ ok: true, problems: [] });
  });

  it("fails when clamd's MaxFileSize is larger than the configured one (content past ours would be scanned in part and called OK)", async () => {
    const r = await probeClamdLimits(createClamdScanner({ port: clamd.port }), { maxFileSize: MiB / 2 });
    expect(r.ok).toBe(false);
    expect(r.problems.join("\n")).toMatch(/MaxFileSize \+ 1 \(524289\).*stream: OK/);
  });

  it("fails when clamd's MaxFileSize is smaller than the configured one (the ZIP walk passes deflated members up to ours, and clamd cuts them at its own without an alert)", async () => {
    const r = await probeClamdLimits(createClamdScanner({ port: clamd.port }), { maxFileSize: 2 * MiB });
    expect(r.ok).toBe(false);
    expect(r.problems.join("\n")).toMatch(/exactly MaxFileSize \(2097152\).*Heuristics\.Limits\.Exceeded\.MaxFileSize/);
  });

  it("fails when clamd does not alert on encrypted archives (it says OK for a ZIP it could not read, and the ZIP walk leaves those to that alert)", async () => {
    const direct = await createClamdScanner({ port: clamd.variantPort! }).scan(Readable.from([encryptedZipProbe()]));
    expect(direct).toMatchObject({ outcome: "clean", raw: "stream: OK" });
    const r = await probeClamdLimits(createClamdScanner({ port: clamd.variantPort! }), { maxFileSize: MiB });
    expect(r.ok).toBe(false);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatch(/encrypted member.*stream: OK/);
  });

  it.each([
    ["ScanPDF", /PDF FlateDecode stream.*stream: OK/],
    ["ScanMail", /base64 mail attachment.*stream: OK/],
    ["ScanSWF", /compressed Flash file.*stream: OK/],
  ])("fails when clamd runs with %s off (it says OK for EICAR inside, and nothing else in the pipeline looks there)", async (option, problem) => {
    const twin = await startSmallClamd({ maxFileSize: MiB }, { conf: { [option]: "no" } });
    try {
      const r = await probeClamdLimits(createClamdScanner({ port: twin.variantPort! }), { maxFileSize: MiB });
      expect(r.ok).toBe(false);
      expect(r.problems).toHaveLength(1);
      expect(r.problems[0]).toMatch(problem);
      // The same files against the twin with the project's settings: found.
      expect(await probeClamdLimits(createClamdScanner({ port: twin.port }), { maxFileSize: MiB })).toMatchObject({ ok: true });
    } finally {
      twin.close();
    }
  }, 120_000);

  it("fails when the Intake.Unscannable container signatures are not loaded", async () => {
    const r = await probeClamdLimits(createClamdScanner({ port: clamd.plainPort! }), { maxFileSize: MiB });
    expect(r.ok).toBe(false);
    expect(r.problems).toHaveLength(2);
    expect(r.problems.join("\n")).toMatch(/CAB header/);
    expect(r.problems.join("\n")).toMatch(/7z header/);
  });

  it("a probed scanner refuses every scan of a misconfigured clamd, and scans normally once the probe passed", async () => {
    const bad = withLimitsProbe(createClamdScanner({ port: clamd.plainPort! }), { maxFileSize: MiB });
    await expect(bad.scan(Readable.from([Buffer.from("harmless")]))).rejects.toMatchObject({ name: "ScanFailedError", kind: "misconfigured" });
    const good = withLimitsProbe(createClamdScanner({ port: clamd.port }), { maxFileSize: MiB });
    expect(await good.scan(Readable.from([eicar()]))).toMatchObject({ outcome: "infected" });
    expect(await good.scan(Readable.from([Buffer.from("harmless")]))).toMatchObject({ outcome: "clean" });
  });

  it("a clamd that cannot be asked is a transient failure, never a pass", async () => {
    const down = withLimitsProbe(createClamdScanner({ port: 1, connectTimeoutMs: 500 }), { maxFileSize: MiB }, { retryMs: 0 });
    await expect(down.limitsProbe()).rejects.toBeInstanceOf(ScanFailedError);
    await expect(down.scan(Readable.from([Buffer.from("x")]))).rejects.toMatchObject({ kind: "connect" });
  });

  describe("a clamd restarted under a running worker with other settings", () => {
    /** One address whose clamd can change, as a restart with another clamd.conf looks from the worker. */
    async function switchable(port: number) {
      let target = port;
      const open = new Set<net.Socket>();
      const server = net.createServer((client) => {
        const upstream = net.connect(target, "127.0.0.1");
        const drop = () => {
          for (const s of [client, upstream]) (s.destroy(), open.delete(s));
        };
        for (const s of [client, upstream]) (open.add(s), s.on("error", drop), s.on("close", drop));
        client.pipe(upstream);
        upstream.pipe(client);
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      return {
        port: (server.address() as net.AddressInfo).port,
        /** reset: the open connections die, as they do when clamd stops. */
        switchTo(p: number, reset: boolean) {
          target = p;
          if (reset) for (const s of open) s.resetAndDestroy();
        },
        close: () => new Promise<void>((r) => (open.forEach((s) => s.destroy()), server.close(() => r()))),
      };
    }

    it("a scan that lost clamd makes the next scan prove the new clamd first", async () => {
      const at = await switchable(clamd.port);
      try {
        const scanner = withLimitsProbe(createClamdScanner({ port: at.port }), { maxFileSize: MiB });
        expect(await scanner.scan(Readable.from([Buffer.from("harmless")]))).toMatchObject({ outcome: "clean" });
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let sent!: () => void;
        const firstChunkRead = new Promise<void>((r) => (sent = r));
        const body = (async function* () {
          yield Buffer.from("first chunk");
          sent();
          await held;
          yield Buffer.from("never sent");
        })();
        const inFlight = scanner.scan(body);
        await firstChunkRead;
        at.switchTo(clamd.variantPort!, true);
        await expect(inFlight).rejects.toBeInstanceOf(ScanFailedError);
        release();
        await expect(scanner.scan(Readable.from([Buffer.from("harmless")]))).rejects.toMatchObject({ kind: "misconfigured", message: expect.stringMatching(/encrypted member/) });
      } finally {
        await at.close();
      }
    });

    it("an idle restart is caught by the periodic re-check", async () => {
      const at = await switchable(clamd.port);
      try {
        const scanner = withLimitsProbe(createClamdScanner({ port: at.port }), { maxFileSize: MiB }, { recheckMs: 0 });
        expect(await scanner.scan(Readable.from([Buffer.from("harmless")]))).toMatchObject({ outcome: "clean" });
        at.switchTo(clamd.variantPort!, false);
        await expect(scanner.scan(Readable.from([Buffer.from("harmless")]))).rejects.toMatchObject({ kind: "misconfigured" });
        at.switchTo(clamd.port, false);
        expect(await scanner.scan(Readable.from([Buffer.from("harmless")]))).toMatchObject({ outcome: "clean" });
      } finally {
        await at.close();
      }
    });
  });

  describe("the worker checks at start", () => {
    const base = { S3_BUCKET: "intake-probe-test", WORKER_ROLES: "scan", SQLITE_PATH: ":memory:", LOG_LEVEL: "silent" };
    const quiet = () => createLogger({ level: "silent", name: "worker" });

    it("refuses to start against a clamd without the container signatures", async () => {
      const config = loadConfig({ ...base, ...clamd.env, CLAMD_PORT: String(clamd.plainPort) });
      await expect(startWorker(config, { logger: quiet() })).rejects.toBeInstanceOf(ScannerMisconfiguredError);
    });

    it("refuses to start when CLAMD_MAX_FILE_SIZE is below clamd's real MaxFileSize", async () => {
      const config = loadConfig({ ...base, ...clamd.env, MAX_UPLOAD_BYTES: String(MiB / 2), CLAMD_MAX_FILE_SIZE: String(MiB / 2) });
      await expect(startWorker(config, { logger: quiet() })).rejects.toThrow(/MaxFileSize \+ 1/);
    });

    it("refuses to start when CLAMD_MAX_FILE_SIZE is above clamd's real MaxFileSize", async () => {
      const config = loadConfig({ ...base, ...clamd.env, CLAMD_MAX_FILE_SIZE: String(2 * MiB) });
      await expect(startWorker(config, { logger: quiet() })).rejects.toThrow(/exactly MaxFileSize/);
    });

    it("starts against the matching clamd", async () => {
      const w = await startWorker(loadConfig({ ...base, ...clamd.env }), { logger: quiet() });
      expect(w.roles).toEqual(["scan"]);
      await w.close();
    });
  });
});

describe("the API refuses a declaration larger than what can be scanned", () => {
  let clamd: SmallClamd;
  let s: PipelineStack;
  beforeAll(async () => {
    clamd = await startSmallClamd({ maxFileSize: MiB });
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", env: clamd.env, workerRoles: null });
  }, 180_000);
  afterAll(async () => {
    await s?.close();
    clamd?.close();
  });

  const create = (size: number) =>
    fetch(`${s.apiUrl}/v1/uploads`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ filename: "big.pdf", contentType: "application/pdf", size }),
    });

  it("413 size_too_large naming the limit, one byte over MaxFileSize; the limit itself is accepted", async () => {
    expect(s.config.policy.maxSize).toBe(MiB);
    const over = await create(MiB + 1);
    expect(over.status).toBe(413);
    const body = (await over.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("size_too_large");
    expect(body.error.message).toContain(String(MiB));
    expect((await create(MiB)).status).toBe(201);
  });
});
