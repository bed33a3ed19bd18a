import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { ApiKeyRepository, UploadRepository, WebhookRepository } from "@intake/db";
import { freshDatabase, type TestDatabase } from "@intake/db/testing";
import { createLogger, loadConfig } from "@intake/runtime";
import { waitFor } from "@intake/testkit";
import { generateSecret, postSigned, WebhookQueue } from "@intake/webhooks";
import { startWorker, type RunningWorker } from "@intake/worker";
import { beforeAllOrFailEach } from "../support/suite.ts";
import { startReceiver, type Receiver } from "./receiver.ts";

/**
 * The SSRF guard in the real worker role, WITHOUT the loopback allowance: endpoints whose
 * address is loopback, link-local (the metadata address), private, or an IPv4-mapped
 * loopback, whether named by IP literal or by a hostname that resolves to loopback, are
 * refused before any connection. The endpoints are written straight to the database, as if
 * configured before the rules tightened: creation refuses literals itself (tested in
 * verdict-webhooks.test.ts), but only the delivery-time check sees what a name resolves to.
 * Literal targets outside loopback are refused before any socket exists, so no packet
 * leaves this machine.
 */
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

describe("webhook SSRF guard in the webhooks worker (no address class allowed)", () => {
  let db: TestDatabase;
  let receiver: Receiver;
  let v6: http.Server | null = null;
  let v6Port = 0;
  let worker: RunningWorker | null = null;
  let dataDir = "";
  const prefix = `t${randomBytes(5).toString("hex")}`;
  const logs: string[] = [];

  beforeAllOrFailEach(async () => {
    receiver = await startReceiver();
    // A listener on [::1] too, so a request the guard let through to it would be seen.
    v6 = http.createServer((req, res) => {
      receiver.requests.push({ path: "[::1]", headers: {}, body: "", at: Date.now() });
      res.end("ok");
    });
    v6.listen(0, "::1");
    await once(v6, "listening").catch(() => undefined);
    v6Port = (v6.address() as AddressInfo | null)?.port ?? receiver.port;
    db = await freshDatabase("sqlite");
    dataDir = mkdtempSync(join(tmpdir(), "intake-ssrf-"));
    const config = loadConfig({ S3_BUCKET: "unused-by-the-webhooks-role", DATA_DIR: dataDir, SQLITE_PATH: (db.settings as { filename: string }).filename, REDIS_URL, QUEUE_PREFIX: prefix, WORKER_ROLES: "webhooks", WEBHOOK_ATTEMPTS: "3", WEBHOOK_BACKOFF_MS: "10", WEBHOOK_TIMEOUT_MS: "1000", LOG_LEVEL: "debug" });
    expect(config.webhooks.allowAddresses).toEqual([]);
    const logger = createLogger({ level: "debug", name: "worker", destination: { write: (line: string) => void logs.push(line) } });
    worker = await startWorker(config, { logger, webhookRelayPollMs: 100, drainTimeoutMs: 5000 });
  }, 60_000);
  afterAll(async () => {
    await worker?.close();
    const redis = new Redis(REDIS_URL);
    const q = new WebhookQueue({ connection: redis, prefix, attempts: 1, backoffMs: 10 });
    await q.queue.obliterate({ force: true }).catch(() => undefined);
    await q.close();
    redis.disconnect();
    await db?.drop();
    await receiver?.close();
    v6?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("refuses loopback (by literal, mapped, IPv6 and hostname), link-local, metadata and private targets, with no retry and no request", async () => {
    const tenant = `s${randomUUID().slice(0, 8)}`;
    await new ApiKeyRepository(db.db).ensureTenant(tenant);
    const webhooks = new WebhookRepository(db.db);
    const p = receiver.port;
    const targets = [`http://127.0.0.1:${p}/a`, `http://localhost:${p}/b`, `http://[::1]:${v6Port}/c`, `http://[::ffff:127.0.0.1]:${p}/d`, `http://[::ffff:7f00:1]:${p}/e`, `http://2130706433:${p}/f`, "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://192.168.0.1/", "http://[fd00::1]/"];
    const ids = new Map<string, string>();
    for (const url of targets) ids.set((await webhooks.createEndpoint({ tenantId: tenant, url, events: ["upload.verified"], secret: generateSecret() })).id, url);

    const uploads = new UploadRepository(db.db);
    const id = randomUUID().replace(/-/g, "");
    await uploads.create({ id, tenantId: tenant, filename: "a.pdf", declaredType: "application/pdf", declaredSize: 10, metadata: {}, objectKey: `pending/${tenant}/${id}`, multipart: null, urlExpiresAt: new Date(Date.now() + 60_000) });
    for (const [event, actor] of [["arrived", "ingest"], ["inspect", "inspect"], ["decide", "scan"], ["promote", "finalize"]] as const) await uploads.transition(id, event, actor);

    const failed = await waitFor(async () => {
      const ds = (await webhooks.listDeliveries({})).filter((d) => d.uploadId === id);
      return ds.length === targets.length && ds.every((d) => d.status === "failed") && ds;
    }, { timeoutMs: 15_000, message: "every delivery refused", describeLast: async () => (await webhooks.listDeliveries({})).map((d) => d.status) });
    for (const d of failed) {
      const attempts = await webhooks.attempts(d.id);
      expect(attempts, ids.get(d.endpointId)).toHaveLength(1); // a refusal is not retried
      expect(attempts[0]!.statusCode).toBeNull();
      expect(attempts[0]!.error, ids.get(d.endpointId)).toMatch(/^refused: .*(loopback|link-local|private) address/);
    }
    expect(receiver.requests).toHaveLength(0);
    expect(logs.some((l) => l.includes("webhook refused by the address guard"))).toBe(true);
  });

  it("checks the address at connect time: a hostname is refused by what it resolves to, not by its name", async () => {
    // "localhost" is a name like any other to the URL check; only the socket's lookup sees 127.0.0.1.
    const r = await postSigned(`http://localhost:${receiver.port}/lookup`, {}, "{}", { requireHttps: false, allow: [], timeoutMs: 1000 });
    expect(r).toMatchObject({ kind: "refused", error: expect.stringMatching(/localhost resolved|loopback address \(127\.0\.0\.1|loopback address \(::1/) });
    // With the class allowed, the same request goes through: the guard, not the network, refused it.
    const ok = await postSigned(`http://localhost:${receiver.port}/lookup`, {}, "{}", { requireHttps: false, allow: ["loopback"], timeoutMs: 1000 });
    expect(ok).toMatchObject({ kind: "response", statusCode: 200 });
    expect(receiver.to("/lookup")).toHaveLength(1);
  });
});
