import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { objectKey, type Upload } from "@intake/domain";
import { processFinalize, processInspect, processScan, Reaper, ScannerVersionCache, type OnePassReport, type ReapSummary, type ScanDeps, type StageJob } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { createClamdScanner } from "@intake/scanner";
import type { ObjectStore } from "@intake/storage";
import { beforeAllOrFailEach } from "@intake/test";
import { waitFor } from "@intake/testkit";
import { gz, payload } from "./container-fixtures.ts";
import { eicar, mzExecutable, pdfOf, png, svgWithScript, zip } from "./fixtures.ts";
import { startClamdProxy, type ClamdProxy } from "./support/clamd-proxy.ts";
import { MiB, sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The one-pass check (packages/pipeline/src/one-pass.ts) fuses inspect, scan and finalize
 * into one scan job for uploads declared at most ONE_PASS_MAX_BYTES. What it must keep from
 * the stages: one verdict per upload under duplicate runs, SIGKILL and Redis loss; only
 * the bytes that were checked ever reach verified/; every refusal the stages make (size,
 * type, clamd, content checks) it makes too.
 *
 * Most cases drive the processors directly with the real adapters (fauxqs or Ceph RGW,
 * SQLite or PostgreSQL, Redis, clamd behind a proxy the test can throttle), so a race can
 * be placed exactly: a store made with Object.create(inner) does what a client or a dying
 * worker would do at one chosen point. The crash and Redis cases use real workers.
 */
const logger = createLogger({ level: "silent", name: "one-pass-test" });
const SHORT_LOCK_WORKER = fileURLToPath(new URL("./support/short-lock-worker.ts", import.meta.url));

const job = (uploadId: string, attemptsMade = 0): StageJob => ({ data: { v: 1, uploadId }, attemptsMade, opts: { attempts: 5 } });

/** A ZIP of exactly `size` bytes holding one stored member: random bytes, EICAR at its end when asked. */
function zipOfSize(size: number, o: { eicarAtEnd?: boolean; name?: string } = {}): Buffer {
  const name = o.name ?? "payload.bin";
  const overhead = zip([{ name, data: Buffer.alloc(0) }]).length;
  const tail = o.eicarAtEnd ? eicar() : Buffer.alloc(0);
  const bytes = zip([{ name, data: Buffer.concat([randomBytes(size - overhead - tail.length), tail]) }]);
  if (bytes.length !== size) throw new Error(`zipOfSize: ${bytes.length} != ${size}`);
  return bytes;
}

/** Two ZIPs of one size, one member of one name: clean text, and EICAR padded to the same length. */
function cleanAndInfectedTwins(length = 4000): { clean: Buffer; infected: Buffer } {
  const clean = zip([{ name: "notes.txt", data: "lorem ipsum ".repeat(length).slice(0, length) }]);
  const infected = zip([{ name: "notes.txt", data: Buffer.concat([eicar(), Buffer.alloc(length - eicar().length, 0x20)]) }]);
  if (clean.length !== infected.length) throw new Error("twins differ in size");
  return { clean, infected };
}

const PAGES = ["<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"];
const pdfWithOpenActionJavaScript = () => pdfOf(["<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>", ...PAGES, "<< /Type /Action /S /JavaScript /JS (app.alert\\('opened'\\);) >>"]);
const cleanSvgWithProlog = () => Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="red"/></svg>\n');

async function drain(body: NodeJS.ReadableStream | Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** What the tests need of one stack: the processors wired to it, and looks at its bucket. */
function harness(s: PipelineStack, clamdPort: number) {
  const scanner = createClamdScanner({ port: clamdPort, timeoutMs: s.config.clamd.timeoutMs });
  const version = new ScannerVersionCache(scanner);
  const deps = (o: { store?: ObjectStore; onePassMaxBytes?: number } = {}): ScanDeps => ({
    repository: s.uploads,
    store: o.store ?? s.storage.store,
    queues: s.queues,
    logger,
    onePassMaxBytes: o.onePassMaxBytes ?? s.config.worker.onePassMaxBytes,
    // As in a worker that runs the finalize role too: the one-pass run writes the final object.
    finalizesInline: true,
    scanner,
    scannerVersion: version,
    clamdLimits: { maxFileSize: s.config.clamd.maxFileSize, maxScanSize: s.config.clamd.maxScanSize, maxRecursion: s.config.clamd.maxRecursion },
    activeContentAllowed: s.config.policy.activeContentAllow,
    heartbeatMs: (s.config.reaper.stuckAfterSeconds * 1000) / 3,
    policy: s.config.policy,
  });
  const row = async (id: string) => (await s.uploads.getById(id))!;

  const h = {
    deps,
    row,
    /** The object's bytes and head, or null. */
    async object(key: string): Promise<{ bytes: Buffer; head: { contentType: string | null; contentDisposition: string | null } } | null> {
      if (!(await s.storage.store.head(key))) return null;
      const got = await s.storage.s3.send(new GetObjectCommand({ Bucket: s.storage.bucket, Key: key }));
      return { bytes: Buffer.from(await got.Body!.transformToByteArray()), head: { contentType: got.ContentType ?? null, contentDisposition: got.ContentDisposition ?? null } };
    },
    /** Every key the bucket holds for this upload: pending, verified, quarantine and staging copies. */
    async keysOf(u: Pick<Upload, "id" | "tenantId">): Promise<string[]> {
      const keys: string[] = [];
      for (const prefix of ["pending", "verified", "quarantine"] as const) {
        const out = await s.storage.s3.send(new ListObjectsV2Command({ Bucket: s.storage.bucket, Prefix: objectKey(prefix, u.tenantId, u.id) }));
        for (const o of out.Contents ?? []) keys.push(o.Key!);
      }
      return keys.sort();
    },
    /** An upload whose object is stored, in `uploaded` (the complete call moved it; RGW sends no events). */
    async arrived(bytes: Buffer, contentType: string, filename = "file.bin"): Promise<Upload> {
      const { id } = await s.upload(bytes, { contentType, filename, complete: true });
      return row(id);
    },
    /**
     * An upload declared `declaredSize` whose pending object is `stored` instead, written
     * with the S3 API (storage that does not hold a PUT to its signed length would let the
     * client do the same), then in `uploaded`.
     */
    async storedOtherThanDeclared(declaredSize: number, stored: Buffer, contentType = "application/zip"): Promise<Upload> {
      const res = await fetch(`${s.apiUrl}/v1/uploads`, {
        method: "POST",
        headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ filename: "file.zip", contentType, size: declaredSize }),
      });
      const created = (await res.json()) as { upload: { id: string } };
      if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(created)}`);
      const pending = await row(created.upload.id);
      await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: pending.objectKey, Body: stored, ContentType: contentType }));
      const moved = await s.uploads.transition(pending.id, "arrived", "api", { storedSize: stored.length });
      if (!moved.upload || moved.upload.status !== "uploaded") throw new Error(`not arrived: ${moved.upload?.status}`);
      return moved.upload;
    },
    /** The one-pass route as a worker runs it: the scan job, then finalize if it left `deciding`. */
    async onePass(id: string, o: { store?: ObjectStore } = {}): Promise<{ report: OnePassReport | void; done: Upload }> {
      const report = await processScan(deps(o), job(id));
      if ((await row(id)).status === "deciding") await processFinalize(deps(o), job(id));
      return { report, done: await row(id) };
    },
    /** The same upload through the stages: inspect, scan, finalize (one-pass off). */
    async stages(id: string): Promise<Upload> {
      const d = deps({ onePassMaxBytes: 0 });
      await processInspect({ ...d, policy: s.config.policy }, job(id));
      await processScan(d, job(id));
      await processFinalize(d, job(id));
      return row(id);
    },
    async counts(id: string) {
      const actions = await s.auditActions(id);
      return { deciding: actions.filter((a) => a === "upload.deciding").length, verified: actions.filter((a) => a === "upload.verified").length, quarantined: actions.filter((a) => a === "upload.quarantined").length };
    },
    /** The finalize job (if any) has run to its end: no stage is still moving bytes. */
    async finalizeSettled(id: string) {
      await waitFor(
        async () => {
          const j = await s.queues.queue("finalize").getJob(`finalize-${id}`);
          return !j || ["completed", "failed"].includes(await j.getState());
        },
        { timeoutMs: 30_000, intervalMs: 50, message: `the finalize job of ${id} to end` },
      );
    },
    /** The invariant: verified/ holds the checked bytes or nothing, and holds them only for a verified row. */
    async expectOnlyChecked(u: Upload, checked: Buffer) {
      const verified = await h.object(objectKey("verified", u.tenantId, u.id));
      if (verified) expect(sha256Of(verified.bytes)).toBe(sha256Of(checked));
    },
  };
  return h;
}

type Harness = ReturnType<typeof harness>;

/**
 * Two one-pass runs of one upload at once (a job whose worker stalled past its lock runs
 * again; the reaper re-queues after a Redis loss): both hold the bytes before either
 * writes a verdict. One `decide` applies; the other run writes nothing and only makes sure
 * finalize is queued, which a finalize worker then runs while the winner PUTs.
 */
async function twoRunsAtOnce(s: PipelineStack, h: Harness) {
  const bytes = zipOfSize(512 * 1024);
  const u = await h.arrived(bytes, "application/zip", "twice.zip");
  let reads = 0;
  let bothRead!: () => void;
  const barrier = new Promise<void>((r) => (bothRead = r));
  const store: ObjectStore = Object.create(s.storage.store);
  store.read = async (key, opts = {}) => {
    const object = await s.storage.store.read(key, opts);
    if (key === u.objectKey && opts.range) {
      if (++reads === 2) bothRead();
      await barrier;
    }
    return object;
  };
  await s.startWorker("finalize");
  try {
    const reports = await Promise.all([processScan(h.deps({ store }), job(u.id)), processScan(h.deps({ store }), job(u.id, 1))]);
    expect(reads).toBe(2);
    expect(reports.map((r) => (r as OnePassReport).verdict).sort()).toEqual(["clean", "lost"]);
    const done = await s.waitFor(u.id, ["verified", "quarantined"]);
    await h.finalizeSettled(u.id);
    expect({ status: done.status, sha256: done.sha256, finalKey: done.finalKey }).toEqual({ status: "verified", sha256: sha256Of(bytes), finalKey: objectKey("verified", u.tenantId, u.id) });
    expect(await h.counts(u.id)).toEqual({ deciding: 1, verified: 1, quarantined: 0 });
    const verified = await h.object(objectKey("verified", u.tenantId, u.id));
    expect(verified!.bytes.equals(bytes)).toBe(true);
    expect({ type: verified!.head.contentType, disposition: verified!.head.contentDisposition }).toEqual({ type: "application/zip", disposition: expect.stringMatching(/^attachment/) });
    expect(await h.keysOf(u)).toEqual([objectKey("verified", u.tenantId, u.id)]);
  } finally {
    await s.stopWorkers();
  }
}

describe("the one-pass check (fauxqs, sqlite, real clamd)", () => {
  let s: PipelineStack;
  let proxy: ClamdProxy;
  let h: Harness;
  let child: ChildProcess | null = null;
  beforeAllOrFailEach(async () => {
    proxy = await startClamdProxy();
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: null, env: { CLAMD_PORT: String(proxy.port), JOB_ATTEMPTS: "30", JOB_BACKOFF_MS: "100" } });
    h = harness(s, proxy.port);
    expect(s.config.worker.onePassMaxBytes).toBe(8 * MiB); // the default, as deployed
  });
  afterEach(async () => {
    await s.stopWorkers();
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    child = null;
    proxy.throttle(0);
    await proxy.restore();
  });
  afterAll(async () => {
    await s?.close();
    await proxy?.close();
  });

  it("two runs of one upload at once: one verdict, one promotion, verified/ byte-equal to the upload", async () => {
    await twoRunsAtOnce(s, h);
  });

  it("a pending object replaced (same size, EICAR) after the one-pass read: verified/ holds the scanned bytes, the replacement is gone", async () => {
    const { clean, infected } = cleanAndInfectedTwins();
    const u = await h.arrived(clean, "application/zip", "notes.zip");
    let replaced = false;
    const store: ObjectStore = Object.create(s.storage.store);
    store.read = async (key, opts = {}) => {
      const object = await s.storage.store.read(key, opts);
      if (!object || key !== u.objectKey || replaced) return object;
      // The GET has been answered in full; the client's PUT lands before anything else happens.
      const bytes = await drain(object.body);
      await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: key, Body: infected, ContentType: "application/zip" }));
      replaced = true;
      return { ...object, body: Readable.from([bytes]) };
    };
    const { report, done } = await h.onePass(u.id, { store });
    expect(replaced).toBe(true);
    expect((report as OnePassReport).path).toBe("one-pass");
    expect({ status: done.status, sha256: done.sha256 }).toEqual({ status: "verified", sha256: sha256Of(clean) });
    expect((await h.object(objectKey("verified", u.tenantId, u.id)))!.bytes.equals(clean)).toBe(true);
    // The replacement was never checked; the one-pass run deletes the pending key after its
    // PUT, whatever it holds by then, so the replacement is kept nowhere.
    expect(await h.keysOf(u)).toEqual([objectKey("verified", u.tenantId, u.id)]);
    expect(await h.counts(u.id)).toEqual({ deciding: 1, verified: 1, quarantined: 0 });
  });

  it.each([
    ["EICAR in a small ZIP", "application/zip", () => zip([{ name: "invoice.txt", data: eicar() }])],
    ["EICAR as text/plain", "text/plain", () => eicar()],
  ] as const)("%s: quarantined as malware in one pass, quarantine/ holds those bytes, verified/ nothing", async (_, type, build) => {
    const bytes = build();
    const u = await h.arrived(bytes, type);
    const { report, done } = await h.onePass(u.id);
    expect(report).toMatchObject({ path: "one-pass", verdict: "quarantine" });
    expect({ status: done.status, reason: done.reason, sha256: done.sha256 }).toEqual({ status: "quarantined", reason: "malware", sha256: sha256Of(bytes) });
    const q = await h.object(objectKey("quarantine", u.tenantId, u.id));
    expect(q!.bytes.equals(bytes)).toBe(true);
    expect(q!.head.contentType).toBe("application/octet-stream");
    expect(await h.keysOf(u)).toEqual([objectKey("quarantine", u.tenantId, u.id)]);
  });

  it.each([
    ["more than declared, all within the first read", 1000, 3000],
    ["more than declared, past the declared size and the sniff budget", 100 * 1024, 300 * 1024],
    ["more than declared, past ONE_PASS_MAX_BYTES", 1 * MiB, 9 * MiB],
    ["fewer than declared", 3000, 1000],
  ] as const)("a client that stores %s: size_mismatch, and quarantine/ holds the whole stored object", async (_, declared, storedSize) => {
    // EICAR at the very end, past the declared size when more is stored: the quarantined
    // copy must be the object as stored, not the read that stopped at the declared size.
    const stored = zipOfSize(storedSize, { eicarAtEnd: true });
    const u = await h.storedOtherThanDeclared(declared, stored);
    const { report, done } = await h.onePass(u.id);
    expect((report as OnePassReport).path).toBe("one-pass");
    expect({ status: done.status, reason: done.reason, storedSize: done.storedSize }).toEqual({ status: "quarantined", reason: "size_mismatch", storedSize });
    expect(await h.object(objectKey("verified", u.tenantId, u.id))).toBeNull();
    const q = await h.object(objectKey("quarantine", u.tenantId, u.id));
    expect(q!.bytes.length).toBe(storedSize);
    expect(q!.bytes.equals(stored)).toBe(true);
    expect(await h.keysOf(u)).toEqual([objectKey("quarantine", u.tenantId, u.id)]);
  });

  /**
   * The same bytes through the one-pass check and through the stages must get the same
   * verdict: every refusal the stages make (type, clamd, the content checks, some of which
   * pick themselves by the sniffed type) the fused path makes too.
   */
  const SAME_VERDICT = [
    ["a clean PNG", "image/png", () => png(32, 32, 7), "verified", null],
    ["a PNG with 25 bytes after IEND (a check chosen by the sniffed type)", "image/png", () => Buffer.concat([png(8, 8), Buffer.from("<script>alert(1)</script>")]), "quarantined", "trailing_data"],
    ["a PDF whose OpenAction runs JavaScript", "application/pdf", pdfWithOpenActionJavaScript, "quarantined", "pdf_javascript"],
    ["an SVG with a script", "image/svg+xml", svgWithScript, "quarantined", "invalid_content"],
    ["a clean SVG with an XML prolog (sniffed as XML)", "image/svg+xml", cleanSvgWithProlog, "verified", null],
    ["a PDF declared as text/plain", "text/plain", pdfWithOpenActionJavaScript, "quarantined", "type_mismatch"],
    ["a Windows executable declared as a PNG", "image/png", mzExecutable, "quarantined", "type_not_allowed"],
    ["EICAR in a gzip behind one byte, in a stored ZIP member", "application/zip", () => zip([{ name: "a.bin", data: Buffer.concat([Buffer.from("x"), gz(payload(1000))]) }]), "quarantined", "unscannable"],
    ["EICAR in a deflated ZIP member", "application/zip", () => zip([{ name: "a.txt", data: payload(5000) }], { deflate: true }), "quarantined", "malware"],
  ] as const;

  it.each(SAME_VERDICT)("%s: the same verdict in one pass as through the stages", async (_, type, build, status, reason) => {
    const bytes = build();
    const one = await h.arrived(bytes, type, "same.bin");
    const staged = await h.arrived(bytes, type, "same.bin");
    const { report, done } = await h.onePass(one.id);
    const viaStages = await h.stages(staged.id);
    expect((report as OnePassReport).path).toBe("one-pass");
    expect(await s.auditActions(staged.id)).toContain("upload.inspecting"); // the stages did run
    expect(await s.auditActions(one.id)).not.toContain("upload.scanning");
    const verdictOf = (u: Upload) => ({ status: u.status, verdict: u.verdict, reason: u.reason, detail: u.reasonDetail, sniffed: u.sniffedType, storedSize: u.storedSize });
    expect(verdictOf(done)).toEqual(verdictOf(viaStages));
    expect({ status: done.status, reason: done.reason }).toEqual({ status, reason });
    expect(done.sha256).toBe(sha256Of(bytes));
    const prefix = status === "verified" ? "verified" : "quarantine";
    const a = await h.object(objectKey(prefix, one.tenantId, one.id));
    const b = await h.object(objectKey(prefix, staged.tenantId, staged.id));
    expect(a!.bytes.equals(bytes)).toBe(true);
    expect({ type: a!.head.contentType, disposition: a!.head.contentDisposition }).toEqual({ type: b!.head.contentType, disposition: b!.head.contentDisposition });
    if (status !== "verified") expect(await h.object(objectKey("verified", one.tenantId, one.id))).toBeNull();
    expect(await h.keysOf(one)).toEqual([objectKey(prefix, one.tenantId, one.id)]);
  });

  it("declared at ONE_PASS_MAX_BYTES: one pass; one byte more: the stages; clean or EICAR at the last byte, each ends right", async () => {
    await s.startWorker("inspect,scan,finalize");
    const limit = s.config.worker.onePassMaxBytes;
    const cases = [
      { size: limit, eicarAtEnd: false, onePass: true },
      { size: limit, eicarAtEnd: true, onePass: true },
      { size: limit + 1, eicarAtEnd: false, onePass: false },
      { size: limit + 1, eicarAtEnd: true, onePass: false },
    ];
    for (const c of cases) {
      const bytes = zipOfSize(c.size, { eicarAtEnd: c.eicarAtEnd });
      const { id } = await s.upload(bytes, { contentType: "application/zip", complete: true });
      const done = await s.waitFor(id, ["verified", "quarantined"], 60_000);
      const actions = await s.auditActions(id);
      expect({ size: c.size, eicar: c.eicarAtEnd, scanningRow: actions.includes("upload.scanning") }).toEqual({ size: c.size, eicar: c.eicarAtEnd, scanningRow: !c.onePass });
      expect({ status: done.status, reason: done.reason, sha256: done.sha256 }).toEqual(c.eicarAtEnd ? { status: "quarantined", reason: "malware", sha256: sha256Of(bytes) } : { status: "verified", reason: null, sha256: sha256Of(bytes) });
      const kept = await h.object(objectKey(c.eicarAtEnd ? "quarantine" : "verified", done.tenantId, id));
      expect(kept!.bytes.equals(bytes)).toBe(true);
      if (c.eicarAtEnd) expect(await h.object(objectKey("verified", done.tenantId, id))).toBeNull();
      expect(actions.filter((a) => a === "upload.deciding")).toHaveLength(1);
    }
  }, 120_000);

  it("a body shorter than the size storage names (a cut connection): never verified, nothing in verified/", async () => {
    const bytes = zipOfSize(200 * 1024);
    const u = await h.arrived(bytes, "application/zip");
    const store: ObjectStore = Object.create(s.storage.store);
    store.read = async (key, opts = {}) => {
      const object = await s.storage.store.read(key, opts);
      if (!object || key !== u.objectKey || !opts.range) return object;
      // Storage names the whole size, then the body ends early (the first half only).
      const all = await drain(object.body);
      return { ...object, body: Readable.from([all.subarray(0, all.length >> 1)]) };
    };
    const { done } = await h.onePass(u.id, { store });
    expect(done.status).toBe("quarantined");
    expect(await h.object(objectKey("verified", u.tenantId, u.id))).toBeNull();
    expect(await h.counts(u.id)).toEqual({ deciding: 1, verified: 0, quarantined: 1 });
    // The one-pass verdict itself says so (clamd received fewer bytes than the object has),
    // rather than a clean verdict on half an object that only finalize's SHA-256 overrules.
    expect({ verdict: done.verdict, reason: done.reason }).toEqual({ verdict: "quarantine", reason: "size_mismatch" });
  });

  it("a run that fails after its verdict, at its PUT: the retry hands it to finalize, verified once, bytes equal", async () => {
    const bytes = zipOfSize(300 * 1024);
    const u = await h.arrived(bytes, "application/zip");
    const puts: string[] = [];
    const store: ObjectStore = Object.create(s.storage.store);
    store.put = async (key) => {
      puts.push(key);
      throw new Error("the worker died here");
    };
    await expect(processScan(h.deps({ store }), job(u.id))).rejects.toThrow("the worker died here");
    expect(puts).toEqual([objectKey("verified", u.tenantId, u.id)]);
    const decided = await h.row(u.id);
    expect({ status: decided.status, verdict: decided.verdict, sha256: decided.sha256 }).toEqual({ status: "deciding", verdict: "clean", sha256: sha256Of(bytes) });

    // BullMQ's retry of the same job: the row is past the one-pass check, so only finalize is left.
    await s.startWorker("finalize");
    expect(await processScan(h.deps({ store }), job(u.id, 1))).toBeUndefined();
    const done = await s.waitFor(u.id, ["verified", "quarantined"]);
    expect(puts).toHaveLength(1);
    expect({ status: done.status, sha256: done.sha256 }).toEqual({ status: "verified", sha256: sha256Of(bytes) });
    expect((await h.object(objectKey("verified", u.tenantId, u.id)))!.bytes.equals(bytes)).toBe(true);
    await h.finalizeSettled(u.id);
    expect(await h.keysOf(u)).toEqual([objectKey("verified", u.tenantId, u.id)]);
    expect(await h.counts(u.id)).toEqual({ deciding: 1, verified: 1, quarantined: 0 });
  });

  /**
   * A run that hangs after its verdict (its PUT never answers; its job lock stays alive, or
   * Redis lost the job) is found by the reaper through the row, and finalize promotes from
   * the pending object. When the hung run wakes up later it PUTs again: over an upload
   * already verified with the same bytes, or, if the client replaced the pending object
   * meanwhile so that finalize quarantined, under verified/ of an upload that is not
   * verified. Either way verified/ may only ever hold the checked bytes.
   */
  it.each([
    ["the pending object left alone", false],
    ["the client replacing the pending object (same size, EICAR) meanwhile", true],
  ] as const)("a run that hangs after its verdict, %s: the reaper and finalize settle it once; verified/ never holds other bytes", async (_, replace) => {
    const { clean, infected } = cleanAndInfectedTwins(6000);
    const u = await h.arrived(clean, "application/zip", "hang.zip");
    let wake!: () => void;
    const woken = new Promise<void>((r) => (wake = r));
    const store: ObjectStore = Object.create(s.storage.store);
    store.put = async (key, body, o) => {
      await woken;
      return s.storage.store.put(key, body, o);
    };
    const hung = processScan(h.deps({ store }), job(u.id));
    const decided = await s.waitFor(u.id, ["deciding", "verified", "quarantined"]);
    expect({ status: decided.status, verdict: decided.verdict }).toEqual({ status: "deciding", verdict: "clean" });
    if (replace) await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: u.objectKey, Body: infected, ContentType: "application/zip" }));

    // Redis lost the job (or its worker is wedged): the row, untouched past the threshold, is stuck.
    await s.flushQueues();
    await s.startWorker("finalize");
    const reaper = new Reaper({ repository: s.uploads, audit: s.audit, store: s.storage.store, queues: s.queues, logger, settings: s.config.reaper, onePassMaxBytes: s.config.worker.onePassMaxBytes });
    const summary: ReapSummary = await reaper.reap(new Date(Date.now() + (s.config.reaper.stuckAfterSeconds + 5) * 1000));
    expect(summary.requeued).toBeGreaterThanOrEqual(1);
    const done = await s.waitFor(u.id, ["verified", "quarantined"]);
    await h.finalizeSettled(u.id);
    expect(done.status).toBe(replace ? "quarantined" : "verified");
    if (replace) {
      expect(done.reason).toBe("checksum_mismatch");
      expect((await h.object(objectKey("quarantine", u.tenantId, u.id)))!.bytes.equals(infected)).toBe(true);
    } else {
      expect((await h.object(objectKey("verified", u.tenantId, u.id)))!.bytes.equals(clean)).toBe(true);
    }

    wake();
    await hung;
    const after = await h.row(u.id);
    expect(after.status).toBe(done.status);
    expect(await h.counts(u.id)).toEqual({ deciding: 1, verified: replace ? 0 : 1, quarantined: replace ? 1 : 0 });
    await h.expectOnlyChecked(after, clean);
    expect((await h.keysOf(u)).filter((k) => k.startsWith("pending/") || k.includes(".promoting-"))).toEqual([]);
  });

  it("a worker process killed with SIGKILL in the middle of a one-pass check: another worker brings it to one verdict", async () => {
    const output: string[] = [];
    const proc = spawn(process.execPath, [SHORT_LOCK_WORKER], { env: { ...process.env, ...s.env, WORKER_ROLES: "scan,finalize", LOCK_MS: "3000" }, stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    proc.stdout!.on("data", (d: Buffer) => output.push(d.toString()));
    proc.stderr!.on("data", (d: Buffer) => output.push(d.toString()));
    await waitFor(
      () => {
        if (proc.exitCode !== null) throw new Error(`worker exited: ${output.join("")}`);
        return output.join("").includes("worker started");
      },
      { timeoutMs: 60_000, message: "the worker process to start (after its clamd probe)", describeLast: () => output.join("").slice(-500) },
    );
    proxy.throttle(1 * MiB); // ~4 s of scanning for 4 MiB
    const bytes = zipOfSize(4 * MiB);
    const { id } = await s.upload(bytes, { contentType: "application/zip", complete: true });
    await s.waitFor(id, ["inspecting"], 20_000);
    const before = proxy.forwarded;
    await waitFor(() => proxy.forwarded - before >= 1 * MiB, { timeoutMs: 20_000, message: "1 MiB of the one-pass scan to reach clamd", describeLast: () => `${proxy.forwarded - before} bytes` });
    proc.kill("SIGKILL");
    await once(proc, "exit");
    expect((await s.uploads.getById(id))?.status).toBe("inspecting");
    expect(await s.auditActions(id)).not.toContain("upload.deciding");

    proxy.throttle(0);
    await s.startWorker("scan,finalize", { stalledIntervalMs: 1000, lockDurationMs: 3000 });
    const done = await s.waitFor(id, ["verified", "quarantined"], 60_000);
    expect({ status: done.status, sha256: done.sha256 }).toEqual({ status: "verified", sha256: sha256Of(bytes) });
    expect((await h.object(objectKey("verified", done.tenantId, id)))!.bytes.equals(bytes)).toBe(true);
    await h.finalizeSettled(id);
    expect(await h.keysOf(done)).toEqual([objectKey("verified", done.tenantId, id)]);
    expect(await h.counts(id)).toEqual({ deciding: 1, verified: 1, quarantined: 0 });
  }, 120_000);
});

/**
 * Ceph RGW checks signatures: the one-pass PUT signs the scan's SHA-256 as its payload hash,
 * so RGW stores exactly the checked bytes or nothing. PostgreSQL: the duplicate runs' two
 * verdicts race in two real transactions.
 */
describe("the one-pass check (rgw, pg)", () => {
  let s: PipelineStack;
  let h: Harness;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "pg", workerRoles: null });
    h = harness(s, s.config.clamd.port);
  });
  afterEach(async () => s.stopWorkers());
  afterAll(async () => s?.close());

  it("two runs of one upload at once: one verdict, one promotion, verified/ byte-equal to the upload", async () => {
    await twoRunsAtOnce(s, h);
  });

  it("bytes altered between the scan and the PUT are refused by storage (payload hash): verified/ only ever holds the checked bytes", async () => {
    const bytes = zipOfSize(100 * 1024);
    const u = await h.arrived(bytes, "application/zip");
    const store: ObjectStore = Object.create(s.storage.store);
    store.put = async (key, body, o) => {
      const altered = Buffer.from(body);
      altered[altered.length >> 1] ^= 0xff;
      return s.storage.store.put(key, altered, o); // same sha256Hex: the checked bytes' hash
    };
    await expect(processScan(h.deps({ store }), job(u.id))).rejects.toThrow();
    expect(await h.object(objectKey("verified", u.tenantId, u.id))).toBeNull();
    expect((await h.row(u.id)).status).toBe("deciding");
    await processScan(h.deps(), job(u.id, 1));
    await processFinalize(h.deps(), job(u.id, 1));
    const done = await h.row(u.id);
    expect({ status: done.status, sha256: done.sha256 }).toEqual({ status: "verified", sha256: sha256Of(bytes) });
    expect((await h.object(objectKey("verified", u.tenantId, u.id)))!.bytes.equals(bytes)).toBe(true);
  });
});
