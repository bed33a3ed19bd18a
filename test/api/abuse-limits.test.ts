import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { createRedisRateLimits, startApi, type RunningApi } from "@intake/api";
import { AuditLog, secretPartOf } from "@intake/db";
import { Reaper } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { MiB, queryOf, REDIS_URL, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * Abuse limits on the real API: two API processes' worth of wiring (two startApi instances
 * on one database, one bucket and one Redis prefix, as two replicas behind a load balancer)
 * share the failed-authentication counts and the request budgets. The client address comes
 * from X-Forwarded-For (TRUSTED_PROXY_HOPS=1), so one test machine can be many clients.
 */
const FAILURES_PER_ADDRESS = 6;
const FAILURES_PER_KEY = 4;
const BLOCK_SECONDS = 120;
const PER_KEY = 8;
const PER_ADDRESS = 40;

describe("abuse limits across two API instances sharing Redis", () => {
  let t: ApiUnderTest;
  let second: RunningApi;
  const secondLogs: string[] = [];
  let addressCounter = 0;
  const freshAddress = () => `198.51.100.${++addressCounter}`;

  beforeAll(async () => {
    t = await startApiUnderTest({
      storage: "fauxqs",
      database: "sqlite",
      env: {
        TRUSTED_PROXY_HOPS: "1",
        AUTH_FAILURES_PER_ADDRESS: String(FAILURES_PER_ADDRESS),
        AUTH_FAILURES_PER_KEY: String(FAILURES_PER_KEY),
        AUTH_FAILURE_WINDOW_SECONDS: "600",
        AUTH_FAILURE_BLOCK_SECONDS: String(BLOCK_SECONDS),
        RATE_LIMIT_PER_KEY: String(PER_KEY),
        RATE_LIMIT_PER_ADDRESS: String(PER_ADDRESS),
        RATE_LIMIT_WINDOW_SECONDS: "600",
      },
    });
    second = await startApi(t.config, { logger: createLogger({ level: "info", name: "api", destination: { write: (l: string) => void secondLogs.push(l) } }) });
  });
  afterAll(async () => {
    await second?.close();
    await t?.close();
  });

  /** A request to one of the two instances, from a given client address. */
  async function call(instance: 0 | 1, address: string, o: { key?: string; path?: string } = {}) {
    const headers: Record<string, string> = { "x-forwarded-for": address };
    if (o.key !== undefined) headers.authorization = `Bearer ${o.key}`;
    const res = await fetch((instance === 0 ? t.url : second.url) + (o.path ?? "/v1/uploads"), { headers });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as { error?: { code: string; message: string } } };
  }

  const wrongSecret = (key: string) => key.slice(0, -4) + (key.endsWith("AAAA") ? "BBBB" : "AAAA");

  it("stops brute force from one address after the limit, on both instances, with 429 and Retry-After", async () => {
    const key = await t.newKey("acme");
    const address = freshAddress();
    const guesses = Array.from({ length: FAILURES_PER_ADDRESS }, (_, i) => `ik_live_${String(i).padStart(16, "0")}_${"x".repeat(43)}`);
    // The allowed failures, alternating between the instances: the count is shared.
    for (const [i, guess] of guesses.entries()) {
      const res = await call((i % 2) as 0 | 1, address, { key: guess });
      expect([i, res.status, res.body.error?.code]).toEqual([i, 401, "unauthenticated"]);
    }
    for (const instance of [0, 1] as const) {
      const res = await call(instance, address, { key: `ik_live_ffffffffffffffff_${"y".repeat(43)}` });
      expect(res.status).toBe(429);
      expect(res.body.error?.code).toBe("too_many_failed_authentications");
      expect(res.body.error?.message).toMatch(/too many failed authentications/);
      const retryAfter = Number(res.retryAfter);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(BLOCK_SECONDS);
    }
    // Blocked means the credentials are not looked at: even the right key is refused from
    // there, so a guess that happens to be right cannot be told from one that is wrong.
    expect((await call(1, address, { key })).status).toBe(429);
    // Another client with the right key is not affected.
    expect((await call(0, freshAddress(), { key })).status).toBe(200);
  });

  it("a burst of 200 failed authentications gets 429 for all but the allowed few", async () => {
    const address = freshAddress();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => call((i % 2) as 0 | 1, address, { key: `ik_live_${String(i).padStart(16, "0")}_${"z".repeat(43)}` })));
    const statuses = results.map((r) => r.status);
    // The counts are atomic in Redis (one Lua INCR each): never more than the limit get to try.
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(FAILURES_PER_ADDRESS);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(200 - FAILURES_PER_ADDRESS);
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
  });

  it("stops guessing at one key id spread over many addresses", async () => {
    const key = await t.newKey("acme");
    const wrong = wrongSecret(key);
    for (let i = 0; i < FAILURES_PER_KEY; i++) expect((await call((i % 2) as 0 | 1, freshAddress(), { key: wrong })).status).toBe(401);
    const blocked = await call(1, freshAddress(), { key: wrong });
    expect(blocked.status).toBe(429);
    expect(blocked.body.error?.code).toBe("too_many_failed_authentications");
    expect(blocked.body.error?.message).toMatch(/API key/);
    expect(Number(blocked.retryAfter)).toBeGreaterThanOrEqual(1);
    // The key id stays refused for wrong secrets, on both instances, for the block time...
    expect((await call(0, freshAddress(), { key: wrong })).status).toBe(429);
    // ...but knowing a key id (it is in logs) does not lock its owner out: the right secret works.
    expect((await call(0, freshAddress(), { key })).status).toBe(200);
    // Other keys are not.
    expect((await call(0, freshAddress(), { key: await t.newKey("acme") })).status).toBe(200);
  });

  it("logs each failed authentication with the key id and the address, never the secret", async () => {
    const key = await t.newKey("acme");
    const wrong = wrongSecret(key);
    const keyId = key.split("_")[2]!;
    const address = freshAddress();
    expect((await call(0, address, { key: wrong })).status).toBe(401);
    expect((await call(1, address, { key: wrong })).status).toBe(401);
    expect((await call(1, address, {})).status).toBe(401);
    const failures = [...t.logs, ...secondLogs].map((l) => JSON.parse(l)).filter((l) => l.event === "authentication_failed" && l.address === address);
    expect(failures.map((l) => [l.keyId, l.reason, l.level])).toEqual([
      [keyId, "unknown_or_revoked", 40],
      [keyId, "unknown_or_revoked", 40],
      [null, "missing", 40],
    ]);
    const everything = [...t.logs, ...secondLogs].join("\n");
    for (const secret of [secretPartOf(wrong)!, secretPartOf(key)!, wrong, key]) expect(everything).not.toContain(secret);
  });

  it("limits requests per API key across both instances, without touching other keys", async () => {
    const key = await t.newKey("acme");
    const other = await t.newKey("acme");
    // Each request from its own address, so only the key's budget is in play.
    for (let i = 0; i < PER_KEY; i++) expect((await call((i % 2) as 0 | 1, freshAddress(), { key })).status).toBe(200);
    const limited = await call(0, freshAddress(), { key });
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ code: "rate_limited" });
    expect(limited.body.error?.message).toContain(`at most ${PER_KEY} per 600 s`);
    expect(Number(limited.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(limited.retryAfter)).toBeLessThanOrEqual(600);
    expect((await call(1, freshAddress(), { key })).status).toBe(429);
    expect((await call(1, freshAddress(), { key: other })).status).toBe(200);
  });

  it("limits requests per address across both instances, whatever the key", async () => {
    const address = freshAddress();
    const keys = await Promise.all(Array.from({ length: 8 }, () => t.newKey("globex")));
    const statuses: number[] = [];
    for (let i = 0; i < PER_ADDRESS; i++) statuses.push((await call((i % 2) as 0 | 1, address, { key: keys[i % keys.length] })).status);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const limited = await call(1, address, { key: keys[0] });
    expect(limited.status).toBe(429);
    expect(limited.body.error?.code).toBe("rate_limited");
    expect(limited.body.error?.message).toMatch(/address/);
    // Unauthenticated routes are not behind the API's limits.
    expect((await fetch(`${t.url}/healthz`, { headers: { "x-forwarded-for": address } })).status).toBe(200);
  });

  it("ignores X-Forwarded-For entries left of the trusted proxy's", async () => {
    // A client that writes its own X-Forwarded-For gets it prepended to by the proxy; only
    // the proxy's (rightmost) entry counts, so rotating the left part buys nothing.
    const address = freshAddress();
    for (let i = 0; i < FAILURES_PER_ADDRESS; i++) {
      const res = await fetch(t.url + "/v1/uploads", { headers: { "x-forwarded-for": `10.0.0.${i}, ${address}`, authorization: `Bearer nope${i}` } });
      expect(res.status).toBe(401);
    }
    const res = await fetch(t.url + "/v1/uploads", { headers: { "x-forwarded-for": `10.9.9.9, ${address}`, authorization: "Bearer nope" } });
    expect(res.status).toBe(429);
  });
});

describe("abuse limits when Redis cannot be reached", () => {
  // A port nothing listens on: every command fails at once (no offline queue), as in an outage.
  const dead = new Redis("redis://127.0.0.1:1", { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null });
  dead.on("error", () => undefined);
  const settings = { windowSeconds: 60, perKey: 3, perAddress: 100, authFailures: { perAddress: 2, perKey: 10, windowSeconds: 60, blockSeconds: 60 } };
  afterAll(() => dead.disconnect());

  it("still blocks failed authentications (in this process) and still admits within the budgets", async () => {
    const limits = createRedisRateLimits(dead, settings, `t${Date.now()}`);
    const who = { address: "203.0.113.9", keyId: null };
    await limits.admit(who);
    await limits.reserveAttempt(who);
    expect(await limits.recordFailure(who, true)).toEqual({ blocked: false });
    expect(await limits.recordFailure(who)).toEqual({ blocked: false });
    // The second failure reached the limit: the address is blocked from there.
    await expect(limits.admit(who)).rejects.toMatchObject({ code: "too_many_failed_authentications", retryAfterSeconds: expect.any(Number) });
    // The per-key budget holds too, counted in memory.
    const caller = { address: "203.0.113.10", keyId: "0123456789abcdef" };
    for (let i = 0; i < 3; i++) await limits.admit(caller);
    await expect(limits.admit(caller)).rejects.toMatchObject({ code: "rate_limited" });
  });
});

describe("part URLs, part numbers and a multipart upload's life", () => {
  let t: ApiUnderTest;
  let key: string;
  beforeAll(async () => {
    t = await startApiUnderTest({
      storage: "fauxqs",
      database: "pg",
      env: { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB), MAX_PARTS_PER_REQUEST: "100" },
    });
    key = await t.newKey("acme");
  });
  afterAll(async () => t?.close());

  async function multipart(size: number, expiresIn?: number) {
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.zip", contentType: "application/zip", size, ...(expiresIn ? { expiresIn } : {}) } });
    expect(created.status).toBe(201);
    return created.body as { uploadId: string; partCount: number; expiresAt: string };
  }

  it("refuses 1,000 part numbers in one request, and the cap plus one, but signs the cap", async () => {
    const up = await multipart(600 * MiB); // 120 parts of 5 MiB
    expect(up.partCount).toBe(120);
    const numbers = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    const thousand = await t.call("POST", `/v1/uploads/${up.uploadId}/parts`, { key, body: { partNumbers: numbers(1000) } });
    expect(thousand.status).toBe(400);
    expect(thousand.body.error).toMatchObject({ code: "too_many_part_numbers", details: { maxPerRequest: 100, requested: 1000 } });
    expect((await t.call("POST", `/v1/uploads/${up.uploadId}/parts`, { key, body: { partNumbers: numbers(101) } })).body.error.code).toBe("too_many_part_numbers");
    const hundred = await t.call("POST", `/v1/uploads/${up.uploadId}/parts`, { key, body: { partNumbers: numbers(100) } });
    expect(hundred.status).toBe(200);
    expect(hundred.body.parts).toHaveLength(100);
  });

  it("refuses duplicate and out-of-range part numbers when signing and when completing", async () => {
    const up = await multipart(12 * MiB); // 3 parts
    const parts = (body: unknown) => t.call("POST", `/v1/uploads/${up.uploadId}/parts`, { key, body });
    expect((await parts({ partNumbers: [1, 2, 2] })).body.error).toMatchObject({ code: "duplicate_part_number", details: { partNumber: 2 } });
    expect((await parts({ partNumbers: [0] })).body.error.code).toBe("invalid_part_numbers");
    expect((await parts({ partNumbers: [4] })).body.error.code).toBe("invalid_part_numbers");
    expect((await parts({ partNumbers: [10001] })).body.error.code).toBe("invalid_part_numbers");
    const etag = '"0123456789abcdef0123456789abcdef"';
    const complete = (list: { partNumber: number; etag: string }[]) => t.call("POST", `/v1/uploads/${up.uploadId}/complete`, { key, body: { parts: list } });
    const dup = await complete([1, 2, 2, 3].map((partNumber) => ({ partNumber, etag })));
    expect(dup.status).toBe(400);
    expect(dup.body.error).toMatchObject({ code: "duplicate_part_number", details: { partNumber: 2 } });
    expect((await complete([1, 2, 4].map((partNumber) => ({ partNumber, etag })))).body.error.code).toBe("invalid_parts");
    expect((await t.call("GET", `/v1/uploads/${up.uploadId}`, { key })).body.upload.status).toBe("pending");
  });

  it("bounds the multipart upload by its expiresIn: part URLs end with it, after it parts and complete are refused", async () => {
    const created = Date.now();
    const up = await multipart(12 * MiB, 120);
    expect(Date.parse(up.expiresAt) - created).toBeLessThanOrEqual(121_000);
    expect(Date.parse(up.expiresAt) - created).toBeGreaterThan(110_000);
    // A part URL asked for an hour still dies with the upload.
    const signed = await t.call("POST", `/v1/uploads/${up.uploadId}/parts`, { key, body: { partNumbers: [1], expiresIn: 3600 } });
    expect(signed.status).toBe(200);
    expect(Number(queryOf(signed.body.parts[0].url).get("X-Amz-Expires"))).toBeLessThanOrEqual(120);
    expect(Date.parse(signed.body.parts[0].expiresAt)).toBeLessThanOrEqual(Date.parse(up.expiresAt));

    // Its life ends (the row's expiry is the only clock the API, the client and the reaper share).
    await t.database.db("uploads").where({ id: up.uploadId }).update({ url_expires_at: Date.now() - 1000 });
    const parts = await t.call("POST", `/v1/uploads/${up.uploadId}/parts`, { key, body: { partNumbers: [2] } });
    expect(parts.status).toBe(409);
    expect(parts.body.error.code).toBe("multipart_upload_expired");
    const complete = await t.call("POST", `/v1/uploads/${up.uploadId}/complete`, { key, body: { parts: [1, 2, 3].map((partNumber) => ({ partNumber, etag: '"0123456789abcdef0123456789abcdef"' })) } });
    expect(complete.status).toBe(409);
    expect(complete.body.error.code).toBe("multipart_upload_expired");
    expect((await t.call("GET", `/v1/uploads/${up.uploadId}`, { key })).body.upload.status).toBe("pending");
  });

  it("is aborted by the reaper once its own expiresIn (plus grace) is over, not the multipart TTL", async () => {
    const up = await multipart(12 * MiB, 60);
    const audit = new AuditLog(t.database.db);
    const logger = createLogger({ level: "silent", name: "reaper" });
    const reaper = new Reaper({ repository: t.uploads, audit, store: t.storage.store, queues: t.queues, logger, settings: t.config.reaper });
    const grace = t.config.reaper.pendingGraceSeconds;
    await reaper.reap(new Date(Date.now() + (60 + grace - 30) * 1000));
    expect((await t.uploads.getById(up.uploadId))?.status).toBe("pending");
    // Long before the 24 h multipart TTL: the row's expiry alone decides.
    expect(60 + grace + 5).toBeLessThan(t.config.reaper.multipartTtlSeconds);
    await reaper.reap(new Date(Date.now() + (60 + grace + 5) * 1000));
    expect((await t.uploads.getById(up.uploadId))?.status).toBe("expired");
    expect((await audit.forUpload(up.uploadId)).map((r) => r.action)).toContain("reaper.multipart_aborted");
  });

  it("refuses a multipart expiresIn beyond the multipart TTL or below a minute", async () => {
    for (const expiresIn of [59, t.config.reaper.multipartTtlSeconds + 1, 1.5]) {
      const res = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.zip", contentType: "application/zip", size: 12 * MiB, expiresIn } });
      expect([expiresIn, res.status, res.body.error.code]).toEqual([expiresIn, 400, "invalid_expiry"]);
    }
  });
});

describe("filenames and metadata with invisible, bidi and control characters", () => {
  let t: ApiUnderTest;
  let key: string;
  beforeAll(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite" });
    key = await t.newKey("acme");
  });
  afterAll(async () => t?.close());

  const declare = (over: Record<string, unknown>) => t.call("POST", "/v1/uploads", { key, body: { filename: "a.pdf", contentType: "application/pdf", size: 100, ...over } });

  it.each([
    ["a right-to-left override", "invoice\u202Efdp.exe", "U+202E"],
    ["a zero-width space", "inv\u200Boice.pdf", "U+200B"],
    ["a zero-width joiner", "a\u200Db.pdf", "U+200D"],
    ["a word joiner", "a\u2060b.pdf", "U+2060"],
    ["a leading byte order mark", "\uFEFFinvoice.pdf", "U+FEFF"],
  ])("refuses a filename with %s, naming the character", async (_what, filename, character) => {
    const res = await declare({ filename });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "invalid_filename", details: { character } });
    expect(res.body.error.message).toContain(character);
  });

  it("refuses a filename whose JSON carries an escaped BOM or an unpaired surrogate", async () => {
    for (const escaped of ["\\ufeffa.pdf", "a\\ud800.pdf"]) {
      const res = await t.call("POST", "/v1/uploads", { key, rawBody: `{"filename":"${escaped}","contentType":"application/pdf","size":100}`, headers: { "content-type": "application/json" } });
      expect([escaped, res.status, res.body.error.code]).toEqual([escaped, 400, "invalid_filename"]);
    }
  });

  it("refuses metadata values with bidi or control characters, keeps a zero-width joiner there", async () => {
    const bidi = await declare({ metadata: { label: "report\u2067txt.exe" } });
    expect(bidi.status).toBe(400);
    expect(bidi.body.error).toMatchObject({ code: "invalid_metadata", details: { key: "label", rule: "bidi", character: "U+2067" } });
    const control = await declare({ metadata: { label: "a\r\nSet-Cookie: x" } });
    expect(control.body.error).toMatchObject({ code: "invalid_metadata", details: { key: "label", rule: "control" } });
    expect(await t.countUploads()).toBe(0);
    const ok = await declare({ metadata: { label: "\u{1F468}\u200D\u{1F469}" } });
    expect(ok.status).toBe(201);
  });

  // Last in this block: it leaves the test machine's address blocked.
  it("without a trusted proxy, X-Forwarded-For buys a brute force nothing", async () => {
    const limit = t.config.limits.authFailures.perAddress;
    expect(t.config.limits.trustedProxyHops).toBe(0);
    const statuses: number[] = [];
    for (let i = 0; i <= limit; i++) {
      const res = await fetch(t.url + "/v1/uploads", { headers: { "x-forwarded-for": `192.0.2.${i}`, "x-real-ip": `192.0.2.${i}`, authorization: `Bearer guess-${i}` } });
      statuses.push(res.status);
    }
    expect(statuses.slice(0, limit).every((s) => s === 401)).toBe(true);
    expect(statuses[limit]).toBe(429);
    // The socket's address is blocked now, for the right key too.
    expect((await t.call("GET", "/v1/uploads", { key })).status).toBe(429);
  });
});
