import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApi, type RunningApi } from "@intake/api";
import { tenantUsage } from "@intake/db";
import { createLogger } from "@intake/runtime";
import { MiB, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * Per-tenant quotas, claimed in the same atomic unit as the upload's row: concurrent
 * creates, half of them through a second API instance on the same database (a second
 * connection pool on PostgreSQL, a second writer process's worth of wiring on SQLite),
 * never overshoot, and a refused create writes nothing.
 */
const PENDING_UPLOADS = 5;
const PENDING_BYTES = 2500;
const PER_DAY = 8;

describe.each(["sqlite", "pg"] as const)("tenant quotas on %s", (databaseKind) => {
  let t: ApiUnderTest;
  let second: RunningApi;
  beforeAll(async () => {
    t = await startApiUnderTest({
      storage: "fauxqs",
      database: databaseKind,
      env: {
        MAX_UPLOAD_BYTES: "1000",
        QUOTA_PENDING_UPLOADS: String(PENDING_UPLOADS),
        QUOTA_PENDING_BYTES: String(PENDING_BYTES),
        QUOTA_UPLOADS_PER_DAY: String(PER_DAY),
        MULTIPART_THRESHOLD_BYTES: String(5 * MiB),
      },
    });
    second = await startApi(t.config, { logger: createLogger({ level: "silent", name: "api" }) });
  });
  afterAll(async () => {
    await second?.close();
    await t?.close();
  });

  const body = (size = 100) => ({ filename: "a.pdf", contentType: "application/pdf", size });
  async function create(key: string, i: number, size = 100, headers: Record<string, string> = {}) {
    const res = await fetch(`${i % 2 === 0 ? t.url : second.url}/v1/uploads`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
      body: JSON.stringify(body(size)),
    });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as any };
  }
  const concurrently = (n: number, f: (i: number) => Promise<{ status: number; body: any; retryAfter: string | null }>) => Promise.all(Array.from({ length: n }, (_, i) => f(i)));

  it("lets exactly the quota of open uploads through 20 concurrent creates, naming the quota in the refusals", async () => {
    const key = await t.newKey("acme");
    const results = await concurrently(20, (i) => create(key, i));
    expect(results.filter((r) => r.status === 201)).toHaveLength(PENDING_UPLOADS);
    const refused = results.filter((r) => r.status !== 201);
    expect(refused).toHaveLength(20 - PENDING_UPLOADS);
    for (const r of refused) {
      expect(r.status).toBe(429);
      expect(r.body.error).toMatchObject({ code: "quota_pending_uploads", details: { quota: "pendingUploads", limit: PENDING_UPLOADS } });
      expect(r.body.error.message).toContain(`quota of open uploads is ${PENDING_UPLOADS}`);
      // It frees up as uploads finish, not at a time anyone can name.
      expect(r.retryAfter).toBeNull();
    }
    expect(await t.countUploads("acme")).toBe(PENDING_UPLOADS);
    expect(await tenantUsage(t.database.db, "acme")).toMatchObject({ pendingUploads: PENDING_UPLOADS, pendingBytes: PENDING_UPLOADS * 100, uploadsToday: PENDING_UPLOADS });
  });

  it("frees a place when an upload is aborted or reaches a verdict", async () => {
    const key = await t.newKey("initech");
    const ids: string[] = [];
    for (let i = 0; i < PENDING_UPLOADS; i++) ids.push((await create(key, i)).body.upload.id);
    expect((await create(key, 0)).body.error.code).toBe("quota_pending_uploads");
    expect((await t.call("DELETE", `/v1/uploads/${ids[0]}`, { key })).status).toBe(200);
    // Through the state machine to quarantined, as the pipeline would.
    for (const event of ["arrived", "inspect", "decide", "quarantine"] as const) expect((await t.uploads.transition(ids[1]!, event, "scan")).applied).toBe(true);
    // Moving between open statuses frees nothing: still two places, not more.
    expect((await t.uploads.transition(ids[2]!, "arrived", "api")).applied).toBe(true);
    const again = await concurrently(4, (i) => create(key, i));
    expect(again.map((r) => r.status).sort()).toEqual([201, 201, 429, 429]);
    expect(await tenantUsage(t.database.db, "initech")).toMatchObject({ pendingUploads: PENDING_UPLOADS });
  });

  it("holds the quota of open bytes under concurrent creates, to the byte", async () => {
    const key = await t.newKey("globex");
    // 900 + 900 = 1800 fit in 2500, a third does not; 700 would still fit after two.
    const big = await concurrently(6, (i) => create(key, i, 900));
    expect(big.filter((r) => r.status === 201)).toHaveLength(2);
    for (const r of big.filter((r) => r.status !== 201)) {
      expect(r.status).toBe(429);
      expect(r.body.error).toMatchObject({ code: "quota_pending_bytes", details: { quota: "pendingBytes", limit: PENDING_BYTES, requested: 900 } });
      expect(r.body.error.message).toContain(`quota of ${PENDING_BYTES} bytes`);
    }
    expect((await create(key, 1, 701)).body.error.code).toBe("quota_pending_bytes");
    expect((await create(key, 0, 700)).status).toBe(201);
    expect((await tenantUsage(t.database.db, "globex"))!.pendingBytes).toBe(PENDING_BYTES);
  });

  it("counts uploads per UTC day, aborted ones too, with Retry-After until midnight", async () => {
    const key = await t.newKey("umbrella");
    for (let round = 0; round < 2; round++) {
      const made = await concurrently(4, (i) => create(key, i));
      expect(made.every((r) => r.status === 201)).toBe(true);
      for (const r of made) expect((await t.call("DELETE", `/v1/uploads/${r.body.upload.id}`, { key })).status).toBe(200);
    }
    const results = await concurrently(6, (i) => create(key, i));
    expect(results.every((r) => r.status === 429)).toBe(true);
    const refused = results[0]!;
    expect(refused.body.error).toMatchObject({ code: "quota_uploads_per_day", details: { quota: "uploadsPerDay", limit: PER_DAY, current: PER_DAY } });
    expect(refused.body.error.message).toContain(`quota of ${PER_DAY} uploads per day`);
    const midnight = new Date();
    midnight.setUTCHours(24, 0, 0, 0);
    const retryAfter = Number(refused.retryAfter);
    expect(Math.abs(retryAfter - (midnight.getTime() - Date.now()) / 1000)).toBeLessThan(30);
    expect(await t.countUploads("umbrella")).toBe(PER_DAY);
  });

  it("does not count an idempotent replay twice, and a refused create leaves no row, audit or counter behind", async () => {
    const key = await t.newKey("hooli");
    const first = await create(key, 0, 100, { "idempotency-key": "same" });
    expect(first.status).toBe(201);
    const replays = await concurrently(6, (i) => create(key, i, 100, { "idempotency-key": "same" }));
    expect(replays.every((r) => r.status === 200 && r.body.upload.id === first.body.upload.id)).toBe(true);
    expect((await tenantUsage(t.database.db, "hooli"))!.pendingUploads).toBe(1);

    for (let i = 1; i < PENDING_UPLOADS; i++) expect((await create(key, i)).status).toBe(201);
    const audits = async () => Number(((await t.database.db("audit_events").where({ tenant_id: "hooli" }).count({ n: "*" }))[0] as { n: number | string }).n);
    const before = await audits();
    expect((await create(key, 0)).status).toBe(429);
    expect(await audits()).toBe(before);
    expect(await t.countUploads("hooli")).toBe(PENDING_UPLOADS);
    expect(await tenantUsage(t.database.db, "hooli")).toMatchObject({ pendingUploads: PENDING_UPLOADS, uploadsToday: PENDING_UPLOADS });
  });
});
