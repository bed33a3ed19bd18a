import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetQueueUrlCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApi, type RunningApi } from "@intake/api";
import { createWorkerConnection, queueName, REAPER_QUEUE, RECHECK_QUEUE, stageJobId } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { createClamdScanner } from "@intake/scanner";
import { PROJECT_CLAMD, startFakeClamd, waitFor, type FakeClamd } from "@intake/test";
import { startWorker, type RunningWorker } from "@intake/worker";
import { WEBHOOK_QUEUE } from "@intake/webhooks";
import { launchBrowser } from "../support/browser.ts";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { putTo, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * The operators' view: bull-board at /admin/queues behind the admin guard, the health facts
 * on /readyz, /admin/health and /v1/admin/health. Real Redis (BullMQ jobs), fauxqs (SQS
 * events, the dead-letter queue), the project's clamd, SQLite.
 */
const HOUR = 3_600_000;

/** A DATA_DIR holding the project's generated test database, its files dated `ageMs` ago. */
function stagedTestDatabase(ageMs: number): string {
  const dir = mkdtempSync(join(tmpdir(), "intake-operators-"));
  const from = join(PROJECT_CLAMD.dataDir, "clamd", "db");
  const to = join(dir, "clamd", "db");
  mkdirSync(to, { recursive: true });
  writeFileSync(join(dir, "clamd", "TEST_SIGNATURES_ONLY"), "test signatures only\n");
  const then = new Date(Date.now() - ageMs);
  for (const name of readdirSync(from)) {
    copyFileSync(join(from, name), join(to, name));
    utimesSync(join(to, name), then, then);
  }
  return dir;
}

describe("the operators' view", () => {
  let t: ApiUnderTest;
  let operator: AdminClient;
  let dataDir: string;
  let worker: RunningWorker | undefined;
  let uploadId: string;
  const sameOrigin = () => ({ "sec-fetch-site": "same-origin", origin: t.url });

  /** A real failure: a BullMQ worker under this API's prefix fails one inspect job. */
  async function failOneInspectJob(name: string): Promise<string> {
    const jobId = `inspect-${name}`;
    await t.queues.queue("inspect").add("inspect", { v: 1, uploadId: name }, { jobId, attempts: 1, removeOnFail: { age: 3600 } });
    const connection = createWorkerConnection(t.config.redis);
    const failer = new Worker(queueName("inspect"), async () => {
      throw new Error("simulated failure");
    }, { connection, prefix: t.config.redis.prefix });
    try {
      await waitFor(async () => ((await t.queues.queue("inspect").getJob(jobId))?.failedReason ? true : null), { timeoutMs: 10_000, message: `job ${jobId} to fail` });
    } finally {
      await failer.close();
      connection.disconnect();
    }
    return jobId;
  }

  beforeAll(async () => {
    dataDir = stagedTestDatabase(3 * HOUR);
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { DATA_DIR: dataDir, SIGNATURE_MAX_AGE_HOURS: "1", STUCK_AFTER_SECONDS: "600", CLAMD_TIMEOUT_MS: "30000" } });
    operator = await signInAs(t, "operator");
    // The ingest role only: events become jobs that stay queued (no stage worker), so the
    // dashboard has a real job to show and the upload stays in processing.
    worker = await startWorker({ ...t.config, worker: { ...t.config.worker, roles: ["ingest"] } }, { store: t.storage.store, events: t.storage.events, logger: createLogger({ level: "warn", name: "worker", destination: { write: () => undefined } }) });
    const key = await t.newKey("acme");
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "notes.txt", contentType: "text/plain", size: 5 } });
    expect(created.status).toBe(201);
    uploadId = created.body.upload.id;
    expect((await putTo(created.body, new TextEncoder().encode("hello"))).status).toBe(200);
    await waitFor(async () => (await t.firstStageJob(uploadId)) ?? null, { timeoutMs: 15_000, message: "ingest to queue the upload's first stage from its S3 event" });
  });
  afterAll(async () => {
    await worker?.close();
    await t?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  describe("bull-board at /admin/queues", () => {
    it("serves the board and its own assets to an operator, under a policy that lets its scripts run", async () => {
      const page = await operator.request("GET", "/admin/queues");
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('<base href="/admin/queues/"');
      const csp = page.headers.get("content-security-policy")!;
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-eval");
      const script = /src="(static\/js\/main\.[^"]+\.js)"/.exec(html)![1]!;
      const asset = await operator.request("GET", `/admin/queues/${script}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get("content-type")).toMatch(/javascript/);
    });

    it("its JSON API lists every watched queue, under their names, with the upload's real job", async () => {
      const res = await operator.request("GET", `/admin/queues/api/queues?activeQueue=${queueName("scan")}&status=waiting&page=1`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { queues: { name: string; counts: Record<string, number>; jobs: { id: string; data: unknown }[] }[] };
      const names = body.queues.map((q) => q.name);
      expect(names).toEqual(expect.arrayContaining([queueName("inspect"), queueName("scan"), queueName("finalize"), REAPER_QUEUE, WEBHOOK_QUEUE, RECHECK_QUEUE]));
      const scan = body.queues.find((q) => q.name === queueName("scan"))!;
      expect(scan.counts.waiting).toBe(1);
      expect(scan.jobs.map((j) => j.id)).toEqual([stageJobId("scan", uploadId)]);
      expect(scan.jobs[0]!.data).toEqual({ v: 1, uploadId });
    });

    it("refuses anonymous requests, tenant API keys and the compliance role, assets and API included", async () => {
      for (const path of ["/admin/queues", "/admin/queues/static/js/x.js", "/admin/queues/api/queues"]) {
        const anonymous = await fetch(t.url + path, { redirect: "manual" });
        expect(anonymous.status).toBe(303);
        expect(anonymous.headers.get("location")).toMatch(/^\/admin\/login\?next=/);
        const key = await fetch(t.url + path, { headers: { authorization: `Bearer ${await t.newKey("acme")}` }, redirect: "manual" });
        expect(key.status).toBe(403);
        expect(((await key.json()) as { error: { code: string } }).error.code).toBe("api_key_not_allowed");
      }
      const compliance = await signInAs(t, "compliance");
      const refused = await compliance.request("GET", "/admin/queues/api/queues");
      expect(refused.status).toBe(403);
      const put = await compliance.request("PUT", `/admin/queues/api/queues/${queueName("scan")}/pause`, { headers: sameOrigin() });
      expect(put.status).toBe(403);
      const anonymousPut = await fetch(`${t.url}/admin/queues/api/queues/${queueName("scan")}/pause`, { method: "PUT", headers: sameOrigin() });
      expect(anonymousPut.status).toBe(401);
      expect(await t.queues.queue("scan").isPaused()).toBe(false);
    });

    it("retries a failed job for an operator; a cross-site or unproven PUT is refused", async () => {
      const failingId = await failOneInspectJob("operators-failing");
      const retry = `/admin/queues/api/queues/${queueName("inspect")}/${failingId}/retry`;
      const forgeries: Record<string, string>[] = [{ "sec-fetch-site": "cross-site", origin: "https://evil.example" }, { "sec-fetch-site": "same-site" }, { origin: "https://evil.example" }, {}];
      for (const headers of forgeries) {
        const forged = await operator.request("PUT", retry, { headers, csrf: false });
        expect(forged.status, JSON.stringify(headers)).toBe(403);
        expect(((await forged.json()) as { error: { code: string } }).error.code).toBe("csrf_failed");
      }
      expect(await (await t.queues.queue("inspect").getJob(failingId))!.getState()).toBe("failed");

      const done = await operator.request("PUT", retry, { headers: sameOrigin(), csrf: false });
      expect(done.status).toBe(204);
      expect(await (await t.queues.queue("inspect").getJob(failingId))!.getState()).toBe("waiting");
      await (await t.queues.queue("inspect").getJob(failingId))!.remove();
    });

    it("in a real browser: the board runs under its policy, shows the upload's job, and its Retry all works (a same-origin PUT without our token)", async () => {
      const failingId = await failOneInspectJob("operators-browser");
      const browser = await launchBrowser();
      try {
        const context = await browser.newContext();
        await context.addCookies([{ name: "intake_admin", value: operator.cookie.split("=")[1]!, url: t.url }]);
        const page = await context.newPage();
        const blocked: string[] = [];
        page.on("console", (m) => {
          if (m.type() === "error" && /Content Security Policy/.test(m.text())) blocked.push(m.text());
        });
        await page.goto(`${t.url}/admin/queues/queue/${queueName("scan")}?status=waiting`);
        await page.getByText(stageJobId("scan", uploadId)).first().waitFor({ timeout: 15_000 });
        // Only the third-party font stylesheet bull-board links is refused: its own scripts ran.
        expect(blocked.filter((b) => !b.includes("fonts.googleapis.com"))).toEqual([]);

        await page.goto(`${t.url}/admin/queues/queue/${queueName("inspect")}?status=failed`);
        await page.getByText(failingId).first().waitFor({ timeout: 15_000 });
        // The queue's "Retry all" (PUT .../retry/failed): the job's own retry is an unlabelled icon.
        await page.getByRole("button", { name: "Retry all", exact: true }).click();
        const confirm = page.getByRole("button", { name: "Confirm", exact: true });
        if (await confirm.isVisible({ timeout: 2000 }).catch(() => false)) await confirm.click();
        await waitFor(async () => ((await (await t.queues.queue("inspect").getJob(failingId))?.getState()) === "waiting" ? true : null), { timeoutMs: 10_000, message: "the browser's retry to move the job back to waiting" });
      } finally {
        await browser.close();
        await (await t.queues.queue("inspect").getJob(failingId))?.remove();
      }
    });

    it("refuses the actions that would change what the pipeline runs (add, edit, obliterate)", async () => {
      const scan = queueName("scan");
      const attempts = [
        ["POST", `/admin/queues/api/queues/${scan}/add`, { name: "scan", data: { v: 1, uploadId: "forged" } }],
        ["PUT", `/admin/queues/api/queues/${scan}/obliterate`, {}],
        ["PUT", `/admin/queues/api/queues/${scan}/empty`, {}],
        ["PATCH", `/admin/queues/api/queues/${scan}/${stageJobId("scan", uploadId)}/update-data`, { jobData: { v: 1, uploadId: "other" } }],
      ] as const;
      for (const [method, path, json] of attempts) {
        const res = await operator.request(method, path, { json, headers: sameOrigin() });
        expect(res.status, `${method} ${path}`).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe("action_not_allowed");
      }
      expect(await t.queues.queue("scan").getJobCounts("waiting")).toEqual({ waiting: 1 });
    });
  });

  describe("health facts", () => {
    it("/readyz: clamd's engine, test signatures flagged, the test database's age past the threshold, and still ready", async () => {
      const version = await createClamdScanner({ host: t.config.clamd.host, port: t.config.clamd.port }).version();
      const ready = await t.call("GET", "/readyz");
      expect(ready.status).toBe(200);
      expect(ready.body.status).toBe("ready");
      const p = ready.body.pipeline;
      expect(p.clamd).toEqual({ reachable: true, engine: version.engine, versionLine: version.raw });
      expect(p.signatures).toMatchObject({ version: null, dateSource: "test_database_files", maxAgeHours: 1, stale: true, testSignaturesOnly: true });
      expect(p.signatures.ageHours).toBeGreaterThanOrEqual(3);
      expect(p.signatures.ageHours).toBeLessThan(3.1);
      expect(p.flags.map((f: { code: string }) => f.code)).toEqual(expect.arrayContaining(["test_signatures_only", "signatures_stale"]));
      expect(ready.body.scanner.testSignaturesOnly).toBe(true);
    });

    it("the same database is not stale under a threshold it is within", async () => {
      const other: RunningApi = await startApi({ ...t.config, signatures: { ...t.config.signatures, maxAgeHours: 48 } }, { logger: createLogger({ level: "error", name: "api", destination: { write: () => undefined } }), port: 0 });
      try {
        const body = (await (await fetch(`${other.url}/readyz`)).json()) as { pipeline: { signatures: { stale: boolean; testSignaturesOnly: boolean }; flags: { code: string }[] } };
        expect(body.pipeline.signatures).toMatchObject({ stale: false, testSignaturesOnly: true });
        expect(body.pipeline.flags.map((f) => f.code)).not.toContain("signatures_stale");
      } finally {
        await other.close();
      }
    });

    it("/readyz: the SQS receive lag the ingest loop recorded, and the dead-letter queue's depth", async () => {
      const ready = await t.call("GET", "/readyz");
      const lag = ready.body.pipeline.sqs.receiveLag;
      expect(lag.messages).toBeGreaterThanOrEqual(1);
      expect(lag.lagMs).toBeGreaterThanOrEqual(0);
      expect(lag.lagMs).toBeLessThan(15_000);
      expect(Date.now() - Date.parse(lag.observedAt)).toBeLessThan(60_000);
      expect(ready.body.pipeline.sqs.deadLetters).toMatchObject({ depth: 0 });

      const sqs = t.storage.sqs!;
      const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: `${t.config.storage.queueName}-dlq` }));
      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "not an S3 event" }));
      const flagged = await waitFor(
        async () => {
          const r = await t.call("GET", "/readyz");
          return r.body.pipeline.sqs.deadLetters?.depth === 1 ? r : null;
        },
        { timeoutMs: 10_000, message: "the dead-letter message to show on /readyz" },
      );
      expect(flagged.status).toBe(200);
      expect(flagged.body.pipeline.sqs.deadLetters.queue).toBeUndefined(); // the URL names the account: not public
      expect(flagged.body.pipeline.flags.map((f: { code: string }) => f.code)).toContain("dead_letters");
    });

    it("the oldest upload stuck in processing: status and age on /readyz, its id only for operators", async () => {
      const since = Date.now() - 3600_000;
      await t.database.db("uploads").where({ id: uploadId }).update({ updated_at: since });
      const ready = await waitFor(
        async () => {
          const r = await t.call("GET", "/readyz");
          return r.body.pipeline.processing.oldest?.stuck ? r : null;
        },
        { timeoutMs: 10_000, message: "the stuck upload to show on /readyz" },
      );
      expect(ready.body.pipeline.processing.oldest).toEqual({ status: "uploaded", since: new Date(since).toISOString(), ageSeconds: expect.any(Number), stuck: true });
      expect(ready.body.pipeline.processing.oldest.ageSeconds).toBeGreaterThanOrEqual(3600);
      expect(JSON.stringify(ready.body)).not.toContain(uploadId);
      expect(ready.body.pipeline.flags.map((f: { code: string }) => f.code)).toContain("uploads_stuck");

      const admin = await operator.request("GET", "/v1/admin/health");
      expect(admin.status).toBe(200);
      const health = (await admin.json()) as { processing: { oldest: { id: string; tenantId: string } }; queues: { name: string; counts: Record<string, number> }[] };
      expect(health.processing.oldest).toMatchObject({ id: uploadId, tenantId: "acme" });
      expect(health.queues.find((q) => q.name === queueName("scan"))!.counts.waiting).toBe(1);
    });

    it("/v1/admin/health and /admin/health refuse anonymous requests, API keys and the compliance role", async () => {
      expect((await fetch(`${t.url}/v1/admin/health`)).status).toBe(401);
      expect((await fetch(`${t.url}/admin/health`, { redirect: "manual" })).status).toBe(303);
      expect((await fetch(`${t.url}/v1/admin/health`, { headers: { authorization: `Bearer ${await t.newKey("acme")}` } })).status).toBe(403);
      const compliance = await signInAs(t, "compliance");
      expect((await compliance.request("GET", "/admin/health")).status).toBe(403);
      expect((await compliance.request("GET", "/v1/admin/health")).status).toBe(403);
    });

    it("the health page renders every fact, flags in red, test signatures as a banner, everything escaped", async () => {
      // What reaches the page from rows is escaped: a tenant id written as markup stays text.
      const markup = '<img src=x onerror="alert(1)">';
      // Tenant ids are validated on creation; the page must not rely on it.
      await t.database.db("tenants").insert({ id: markup, name: "markup", created_at: Date.now() });
      await t.database.db("uploads").where({ id: uploadId }).update({ tenant_id: markup });
      try {
        // Reports are reused for HEALTH_CACHE_MS: wait for one read after the change.
        const { page, html } = await waitFor(
          async () => {
            const res = await operator.request("GET", "/admin/health");
            const text = await res.text();
            return text.includes("onerror") ? { page: res, html: text } : null;
          },
          { timeoutMs: 10_000, message: "a health report read after the tenant id changed" },
        );
        expect(page.status).toBe(200);
        expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
        expect(html).toMatch(/<div class="banner" role="alert" data-flag="test_signatures_only">clamd runs on TEST SIGNATURES ONLY/);
        expect(html).toContain('data-flag="signatures_stale"');
        expect(html).toContain('data-flag="dead_letters"');
        expect(html).toContain('data-flag="uploads_stuck"');
        const version = await createClamdScanner({ host: t.config.clamd.host, port: t.config.clamd.port }).version();
        expect(html).toContain(version.engine);
        expect(html).toContain(uploadId);
        expect(html).toMatch(/1 message\(s\)/);
        expect(html).toContain(`data-queue="${queueName("scan")}"`);
        expect(html).toContain(`data-queue="${WEBHOOK_QUEUE}"`);
        expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
        expect(html).not.toContain("<img src=x");
      } finally {
        await t.database.db("uploads").where({ id: uploadId }).update({ tenant_id: "acme" });
      }
    });
  });
});

describe("health facts from an official database's VERSION", () => {
  // This machine's clamd loads only the generated test database; the shape clamd answers
  // with an official one comes from a clamd stand-in that speaks the protocol (testkit).
  let fake: FakeClamd;
  let t: ApiUnderTest;
  beforeAll(async () => {
    const built = new Date(Date.now() - 30 * HOUR);
    const ctime = built.toUTCString().replace(/^(\w{3}), (\d{2}) (\w{3}) (\d{4}) ([\d:]+) GMT$/, (_m, wd, d, mon, y, hms) => `${wd} ${mon} ${String(Number(d)).padStart(2, " ")} ${hms} ${y}`);
    fake = await startFakeClamd(`ClamAV 1.0.7/27450/${ctime}`);
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { CLAMD_PORT: String(fake.port), SIGNATURE_MAX_AGE_HOURS: "24" } });
  });
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  it("names the database's version and date, and flags it stale past the threshold, with no test-signature flag", async () => {
    const ready = await t.call("GET", "/readyz");
    expect(ready.status).toBe(200);
    const s = ready.body.pipeline.signatures;
    expect(s).toMatchObject({ version: "27450", dateSource: "clamd", testSignaturesOnly: false, stale: true, maxAgeHours: 24 });
    expect(s.ageHours).toBeGreaterThanOrEqual(30);
    expect(s.ageHours).toBeLessThan(30.1);
    expect(ready.body.pipeline.clamd.engine).toBe("ClamAV 1.0.7");
    expect(ready.body.pipeline.flags.map((f: { code: string }) => f.code)).toEqual(["signatures_stale"]);
  });
});
