import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyRepository, RescanRunRepository, TenantRepository, WebhookRepository, type RescanRun } from "@intake/db";
import { objectKey } from "@intake/domain";
import type { Scanner } from "@intake/pipeline";
import { createClamdScanner, SIGNATURE_SET_PROBE } from "@intake/scanner";
import { freePort, waitFor } from "@intake/testkit";
import { generateSecret } from "@intake/webhooks";
import type { RunningWorker } from "@intake/worker";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";
import { startSmallClamd, type SmallClamd } from "../support/small-clamd.ts";
import { startReceiver, type Receiver } from "../webhooks/receiver.ts";

/**
 * Issue 12 §6 through the whole stack: rescans after signature updates, against a clamd of
 * the test's own (infra/clamd/up.sh with its own DATA_DIR and port), whose rules the test
 * changes and RELOADs — the shared clamd on 3310 never sees it.
 *
 * The pipeline's workers (ingest to finalize, webhooks) run without the rescan role; the
 * rescan role runs in workers of its own, started and stopped by the tests, over a scanner
 * that counts clamd's scans (the signature-set probe aside) so "not scanned again" is a
 * number, not a hope.
 */
const CLI = fileURLToPath(new URL("../../services/worker/src/signatures-cli.ts", import.meta.url));
const MARKER = "INTAKE-RESCAN-PAYLOAD-5521";
const DAY = 86_400_000;
const textWith = (marker: string) => Buffer.from(`Meeting notes.\n${marker}\nEnd.\n`);
const yaraRule = (name: string, text: string) => `rule ${name}\n{\n  strings:\n    $a = "${text}"\n  condition:\n    $a\n}\n`;

/** clamd, counting every scan that is not the signature watch's probe; optionally slowed. */
function countingScanner(port: number, o: { delayMs?: number } = {}): Scanner & { scans: () => number; scansOf: (bytes: Buffer) => number } {
  const inner = createClamdScanner({ port, timeoutMs: 30_000 });
  let scans = 0;
  const seen: Buffer[] = [];
  return {
    scans: () => scans,
    scansOf: (bytes) => seen.filter((b) => b.equals(bytes)).length,
    version: () => inner.version(),
    scan: async (stream) => {
      const chunks: Buffer[] = [];
      for await (const c of stream as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
      const bytes = Buffer.concat(chunks);
      if (!bytes.equals(SIGNATURE_SET_PROBE)) {
        scans++;
        seen.push(bytes);
        if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      }
      return inner.scan(Readable.from([bytes]));
    },
  };
}

describe.each(["sqlite", "pg"] as const)("rescans after signature updates (%s)", (database) => {
  let clamd: SmallClamd;
  let s: PipelineStack;
  let rulesDir: string;
  let receiver: Receiver;
  let runs: RescanRunRepository;
  const db = () => s.database.db;

  const reload = () => {
    const r = spawnSync(process.execPath, [CLI, "reload"], { env: { ...process.env, ...clamd.env, DATA_DIR: clamd.dataDir, CLAMD_PORT: String(clamd.port), CLAMD_CUSTOM_RULES_DIR: rulesDir, LOG_LEVEL: "silent" }, encoding: "utf8", timeout: 120_000 });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  };
  /** A rescan worker of its own; the planner ticks every second. */
  const rescanWorker = (scanner: Scanner, env: Record<string, string> = {}, opts: Parameters<PipelineStack["startWorker"]>[1] = {}) =>
    s.startWorker("rescan", { scanner, ...opts }, { RESCAN_TICK_SECONDS: "1", ...env });
  const verified = async (bytes: Buffer, filename = "notes.txt") => {
    const { id } = await s.upload(bytes, { contentType: "text/plain", filename });
    return s.waitFor(id, ["verified", "quarantined"]).then((u) => {
      expect(u.status).toBe("verified");
      return u;
    });
  };
  /** As if verified `daysAgo` days ago with older signatures. */
  const age = async (ids: string[], o: { daysAgo?: number; version?: string } = {}) => {
    await db()("uploads").whereIn("id", ids).update({ ...(o.daysAgo !== undefined ? { finished_at: Date.now() - o.daysAgo * DAY } : {}), ...(o.version ? { scanner_version: o.version } : {}) });
  };
  const finished = (runId: string, timeoutMs = 60_000) =>
    waitFor(async () => {
      const r = await runs.get(runId);
      return r && r.status !== "running" ? r : null;
    }, { timeoutMs, intervalMs: 100, message: `rescan run ${runId} to finish` });
  const latestRun = (trigger: RescanRun["trigger"]) => waitFor(async () => (await runs.recent(50)).find((r) => r.trigger === trigger) ?? null, { timeoutMs: 30_000, intervalMs: 100, message: `a ${trigger} rescan run` });
  /** An upload of another tenant (its own key), verified. */
  const uploadAs = async (key: string, bytes: Buffer): Promise<string> => {
    const res = await fetch(`${s.apiUrl}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify({ filename: "theirs.txt", contentType: "text/plain", size: bytes.length }) });
    const created = (await res.json()) as { upload: { id: string }; url: string; headers: Record<string, string> };
    expect(res.status).toBe(201);
    expect((await fetch(created.url, { method: "PUT", headers: created.headers, body: bytes })).status).toBe(200);
    expect((await s.waitFor(created.upload.id, ["verified", "quarantined"])).status).toBe("verified");
    return created.upload.id;
  };
  const usage = async () => db()("tenant_usage").where({ tenant_id: s.tenant }).first("pending_uploads", "pending_bytes", "day_uploads");

  beforeAll(async () => {
    clamd = await startSmallClamd({ maxFileSize: 10 * 1024 * 1024 });
    rulesDir = join(clamd.dataDir, "rules");
    mkdirSync(rulesDir);
    receiver = await startReceiver();
    s = await startPipelineStack({
      storage: "fauxqs",
      database,
      workerRoles: "ingest,inspect,scan,finalize,reaper,webhooks",
      env: { ...clamd.env, CLAMD_PORT: String(clamd.port), SIGNATURE_CHECK_SECONDS: "1", WORKER_METRICS_PORT: "0", WEBHOOK_ALLOW_ADDRESSES: "loopback", WEBHOOK_BACKOFF_MS: "50", RESCAN_PAGE_SIZE: "3", RESCAN_WINDOW_DAYS: "30" },
    });
    runs = new RescanRunRepository(s.database.db);
  }, 180_000);
  afterAll(async () => {
    await s?.close();
    await receiver?.close();
    clamd?.close();
  });

  it("an upload verified yesterday is quarantined by today's rescan; clean ones stay verified with the new version; one outside the window is left alone", async () => {
    await new WebhookRepository(db()).createEndpoint({ tenantId: s.tenant, url: `${receiver.url}/hooks`, events: ["upload.quarantined"], secret: generateSecret() });
    const caught = await verified(textWith(MARKER), "caught.txt");
    const clean = await verified(textWith("nothing here"), "clean.txt");
    const outside = await verified(textWith(MARKER), "old.txt");
    await age([caught.id, clean.id], { daysAgo: 1 });
    await age([outside.id], { daysAgo: 40 });
    const before = await usage();
    const counting = countingScanner(clamd.port);

    // Today's signatures: a rule that matches the upload verified yesterday.
    writeFileSync(join(rulesDir, "acme.yar"), yaraRule("Acme_Rescan_Catch", MARKER));
    reload();
    const worker = await rescanWorker(counting, { WORKER_METRICS_PORT: String(await freePort()) });
    const run = await latestRun("signatures");
    expect(run.signatureVersion).toMatch(/rules:[0-9a-f]{16}$/);
    const done = await finished(run.id);
    expect(done.status).toBe("finished");

    const u = (await s.uploads.getById(caught.id))!;
    expect(u).toMatchObject({ status: "quarantined", verdict: "quarantine", reason: "malware_on_rescan", signature: "YARA.Acme_Rescan_Catch.UNOFFICIAL", finalKey: objectKey("quarantine", s.tenant, caught.id), scannerVersion: run.signatureVersion });
    expect(u.reasonDetail).toContain("clamd found YARA.Acme_Rescan_Catch.UNOFFICIAL on a rescan");
    // Under quarantine/ only.
    expect(await s.storage.store.head(objectKey("quarantine", s.tenant, caught.id))).not.toBeNull();
    expect(await s.storage.store.head(objectKey("verified", s.tenant, caught.id))).toBeNull();
    // The audit chain: the move, then the quarantine, by the rescan.
    const trail = (await s.audit.forUpload(caught.id)).filter((r) => r.actor === "rescan");
    expect(trail.map((r) => [r.action, r.stateBefore, r.stateAfter])).toEqual([["upload.quarantining", "verified", "quarantining"], ["upload.quarantined", "quarantining", "quarantined"]]);
    expect(trail[0]!.detail).toMatchObject({ event: "rescan_match", reason: "malware_on_rescan", signature: "YARA.Acme_Rescan_Catch.UNOFFICIAL" });
    // The webhook, delivered to a real receiver.
    const hooks = await waitFor(() => receiver.to("/hooks").filter((r) => r.body.includes(caught.id)).at(0) ?? null, { timeoutMs: 20_000, message: "the upload.quarantined webhook" });
    expect(JSON.parse(hooks.body)).toMatchObject({ type: "upload.quarantined", data: { id: caught.id, status: "quarantined", result: { reason: "malware_on_rescan" } } });
    // The download is refused from then on.
    const download = await fetch(`${s.apiUrl}/v1/uploads/${caught.id}/download`, { headers: { authorization: `Bearer ${s.apiKey}` }, redirect: "manual" });
    expect(download.status).toBe(409);
    expect(((await download.json()) as { error: { code: string } }).error.code).toBe("upload_not_verified");

    // The clean one: still verified, still downloadable, cleared now by today's signatures, no new audit row.
    expect(await s.uploads.getById(clean.id)).toMatchObject({ status: "verified", scannerVersion: run.signatureVersion });
    expect((await s.audit.forUpload(clean.id)).filter((r) => r.actor === "rescan")).toEqual([]);
    expect((await s.download(clean.id)).status).toBe(200);
    // Outside RESCAN_WINDOW_DAYS: not scanned, still verified by the old version.
    expect(await s.uploads.getById(outside.id)).toMatchObject({ status: "verified", scannerVersion: outside.scannerVersion });
    expect(await runs.itemOutcome(run.id, outside.id)).toBeNull();
    // Exactly the two in the window were scanned; the counts say so; quotas untouched.
    expect(counting.scans()).toBe(2);
    expect(await runs.counts(run.id)).toEqual({ queued: 0, clean: 1, quarantined: 1, skipped: 0, failed: 0 });
    expect(await usage()).toEqual(before);
    expect((await s.audit.search({ actions: ["rescan.started", "rescan.finished"], limit: 10 })).items.map((r) => r.action)).toEqual(["rescan.started", "rescan.finished"]);

    // The rescan worker's metrics count what it did.
    const scraped = await (await fetch(worker.metricsUrl!)).text();
    expect(scraped).toMatch(/^intake_rescan_items_total\{outcome="quarantined"[^}]*\} 1$/m);
    expect(scraped).toMatch(/^intake_rescan_items_total\{outcome="clean"[^}]*\} 1$/m);
    expect(Number(/^intake_rescan_bytes_total(?:\{[^}]*\})? (\d+)$/m.exec(scraped)?.[1])).toBe(textWith(MARKER).length + textWith("nothing here").length);

    // Idempotent: the same signatures start no second automatic run, and a manual run over
    // the same uploads finds nothing cleared by other signatures: nothing is scanned again.
    const again = await worker.rescan!.startManual({ tenantId: s.tenant, verifiedFrom: new Date(Date.now() - 2 * DAY), startedBy: "test-operator" });
    expect((await finished(again.id)).status).toBe("finished");
    expect(await runs.counts(again.id)).toEqual({ queued: 0, clean: 0, quarantined: 0, skipped: 0, failed: 0 });
    expect(counting.scans()).toBe(2);
    expect((await runs.recent(50)).filter((r) => r.trigger === "signatures")).toHaveLength(1);
    await worker.close();
  }, 180_000);

  it("a restarted rescan goes on where it stopped: each upload scanned once over both workers", async () => {
    const batch = [];
    for (let i = 0; i < 10; i++) batch.push(await verified(textWith(`clean notes ${i}`), `batch-${i}.txt`));
    await age(batch.map((u) => u.id), { version: "ClamAV 1.0.0/26000/Mon Jan  1 00:00:00 2024/rules:none" });
    const first = countingScanner(clamd.port, { delayMs: 250 });
    const w1 = await rescanWorker(first, { RESCAN_CONCURRENCY: "1", RESCAN_MAX_SHARE: "1" });
    const run = await w1.rescan!.startManual({ tenantId: s.tenant, verifiedFrom: new Date(Date.now() - DAY), startedBy: "test-operator" });
    await waitFor(async () => ((await runs.counts(run.id)).clean >= 3 ? true : null), { timeoutMs: 30_000, intervalMs: 50, message: "three items done before the restart" });
    await w1.close(); // drains the job in flight
    const doneBefore = (await runs.counts(run.id)).clean;
    expect(doneBefore).toBeLessThan(10);
    expect((await runs.get(run.id))!.status).toBe("running");
    expect(first.scans()).toBe(doneBefore);

    const second = countingScanner(clamd.port);
    const w2 = await rescanWorker(second, { RESCAN_MAX_SHARE: "1" });
    expect((await finished(run.id)).status).toBe("finished");
    expect(await runs.counts(run.id)).toEqual({ queued: 0, clean: 10, quarantined: 0, skipped: 0, failed: 0 });
    // Nothing done before the restart was scanned again.
    expect(first.scans() + second.scans()).toBe(10);
    expect(second.scans()).toBe(10 - doneBefore);
    const progress = await runs.progress((await runs.get(run.id))!);
    expect(progress).toMatchObject({ remaining: 0, eta: null });
    expect(progress.bytesScanned).toBeGreaterThan(0);
    await w2.close();
  }, 120_000);

  it("an operator's run covers its tenant and its verdict dates only", async () => {
    const tenants = new TenantRepository(db());
    await tenants.create("globex", "Globex").catch(() => undefined);
    const globexKey = (await new ApiKeyRepository(db()).create("globex", "rescan-test")).key;
    const theirs = await uploadAs(globexKey, textWith("globex notes"));
    const recent = await verified(textWith("recent notes"), "recent.txt");
    const older = await verified(textWith("older notes"), "older.txt");
    const old = "ClamAV 1.0.0/26000/old/rules:none";
    await age([theirs, recent.id], { version: old, daysAgo: 2 });
    await age([older.id], { version: old, daysAgo: 9 });
    const counting = countingScanner(clamd.port);
    const w = await rescanWorker(counting, { RESCAN_MAX_SHARE: "1" });
    // acme, verdicts between 5 and 1 days ago: `recent` only (not globex's, not the 9-day-old one).
    const run = await w.rescan!.startManual({ tenantId: s.tenant, verifiedFrom: new Date(Date.now() - 5 * DAY), verifiedTo: new Date(Date.now() - DAY), startedBy: "test-operator" });
    expect((await finished(run.id)).status).toBe("finished");
    expect(await runs.counts(run.id)).toMatchObject({ clean: 1 });
    expect(await runs.itemOutcome(run.id, recent.id)).toBe("clean");
    expect(await runs.itemOutcome(run.id, theirs)).toBeNull();
    expect(await runs.itemOutcome(run.id, older.id)).toBeNull();
    expect(counting.scans()).toBe(1);
    expect((await s.uploads.getById(theirs))!.scannerVersion).toBe(old);
    expect((await s.uploads.getById(older.id))!.scannerVersion).toBe(old);
    // The operator's start is on the audit trail, with who and what.
    const started = (await s.audit.search({ actions: ["rescan.started"], limit: 50 })).items.find((r) => r.detail.runId === run.id);
    expect(started).toMatchObject({ actor: "admin", actorId: "test-operator", tenantId: s.tenant });
    await w.close();
  }, 120_000);

  it("a move that dies between the copy and the delete is finished by the retry: the object ends under quarantine/ only", async () => {
    const MARK2 = "INTAKE-RESCAN-SECOND-7710";
    const victim = await verified(textWith(MARK2), "victim.txt");
    writeFileSync(join(rulesDir, "second.yar"), yaraRule("Acme_Second_Catch", MARK2));
    reload();
    let crashed = false;
    let between: { verified: boolean; quarantined: boolean; status: string; download: number } | null = null;
    const counting = countingScanner(clamd.port);
    const w = await rescanWorker(counting, { RESCAN_MAX_SHARE: "1" }, {
      onRescanMoveStep: async (step, u) => {
        if (step !== "copied" || crashed || u.id !== victim.id) return;
        crashed = true;
        const res = await fetch(`${s.apiUrl}/v1/uploads/${u.id}/download`, { headers: { authorization: `Bearer ${s.apiKey}` }, redirect: "manual" });
        between = {
          verified: Boolean(await s.storage.store.head(objectKey("verified", s.tenant, u.id))),
          quarantined: Boolean(await s.storage.store.head(objectKey("quarantine", s.tenant, u.id))),
          status: (await s.uploads.getById(u.id))!.status,
          download: res.status,
        };
        throw new Error("killed between the copy and the delete");
      },
    });
    const done = await s.waitFor(victim.id, ["quarantined"], 60_000);
    expect(crashed).toBe(true);
    // Mid-move: both copies exist for a moment, the status says so, and no download is signed.
    expect(between).toEqual({ verified: true, quarantined: true, status: "quarantining", download: 409 });
    expect(done).toMatchObject({ reason: "malware_on_rescan", signature: "YARA.Acme_Second_Catch.UNOFFICIAL", finalKey: objectKey("quarantine", s.tenant, victim.id) });
    expect(await s.storage.store.head(objectKey("verified", s.tenant, victim.id))).toBeNull();
    expect(await s.storage.store.head(objectKey("quarantine", s.tenant, victim.id))).not.toBeNull();
    // One quarantine: one audit row of each step, one scan (the retry finished the move
    // without scanning again). The reload started an automatic run over every verified
    // upload of the window, which this worker also scans: the victim's bytes count once.
    const actions = (await s.audit.forUpload(victim.id)).filter((r) => r.actor === "rescan").map((r) => r.action);
    expect(actions).toEqual(["upload.quarantining", "upload.quarantined"]);
    expect(counting.scansOf(textWith(MARK2))).toBe(1);
    await w.close();
  }, 120_000);
});
