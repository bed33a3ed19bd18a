import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApi, type RunningApi } from "@intake/api";
import { AdminUserRepository } from "@intake/db";
import { createLogger } from "@intake/runtime";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";
import { CookieClient, signInWithPassword } from "./admin-browser.ts";

/**
 * Failed sign-ins are limited per account and per client address in Redis: two API
 * processes on the same Redis and database share the counts, the block holds before the
 * password is checked (the right password is refused too while it lasts), a success resets
 * the account, and with Redis away sign-in is refused rather than counted in memory.
 */
const PASSWORD = "correct horse battery staple";
const PER_ACCOUNT = 3;
const PER_ADDRESS = 6;

describe("admin login limits across two API processes (PostgreSQL, one Redis)", () => {
  let a: ApiUnderTest;
  let b: RunningApi;
  beforeAll(async () => {
    a = await startApiUnderTest({
      storage: "fauxqs",
      database: "pg",
      env: { ADMIN_LOGIN_FAILURES_PER_ACCOUNT: String(PER_ACCOUNT), ADMIN_LOGIN_FAILURES_PER_ADDRESS: String(PER_ADDRESS), ADMIN_LOGIN_WINDOW_SECONDS: "120", ADMIN_LOGIN_BLOCK_SECONDS: "90", TRUSTED_PROXY_HOPS: "1" },
    });
    // The second process: the same configuration (database, Redis prefix, storage).
    b = await startApi(a.config, { logger: createLogger({ level: "silent", name: "api-b" }) });
    const users = new AdminUserRepository(a.database.db);
    for (const e of ["burst", "target", "reset", "other1", "other2", "other3", "fresh"]) await users.create({ email: `${e}@example.test`, role: "operator", password: PASSWORD });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const attempt = (url: string, email: string, password: string, address: string) => signInWithPassword(new CookieClient({ "x-forwarded-for": address }), url, email, password);

  it("blocks an account after its failures on either process, before the password is checked, with Retry-After", async () => {
    const urls = [a.url, b.url];
    for (let i = 0; i < PER_ACCOUNT; i++) {
      // A new address each time: only the account's count can be what blocks.
      const r = await attempt(urls[i % 2]!, "target@example.test", `wrong password ${i}`, `198.51.100.${10 + i}`);
      expect(r.status, `failure ${i + 1}`).toBe(401);
    }
    for (const url of urls) {
      const blocked = await attempt(url, "target@example.test", PASSWORD, "198.51.100.99");
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(60);
      expect(blocked.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(blocked.text).toContain('data-code="too_many_sign_in_attempts"');
      expect(blocked.text).toMatch(/too many failed sign-in attempts for this account; try again in \d+ seconds/);
    }
    // An unknown account is limited the same way (the answer tells nothing about existence).
    for (let i = 0; i < PER_ACCOUNT; i++) expect((await attempt(urls[i % 2]!, "ghost@example.test", "x".repeat(12), `198.51.100.${40 + i}`)).status).toBe(401);
    expect((await attempt(a.url, "ghost@example.test", "x".repeat(12), "198.51.100.50")).status).toBe(429);
  });

  it("lets a burst of concurrent guesses on both processes through no more than the limit", async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => attempt(i % 2 ? b.url : a.url, "burst@example.test", `burst guess ${i}`, `192.0.2.${i + 1}`).then((r) => r.status)));
    expect(results.filter((s) => s === 401)).toHaveLength(PER_ACCOUNT);
    expect(results.filter((s) => s === 429)).toHaveLength(10 - PER_ACCOUNT);
  });

  it("resets the account's count on a successful sign-in", async () => {
    const addr = (i: number) => `198.51.100.${60 + i}`;
    for (let i = 0; i < PER_ACCOUNT - 1; i++) expect((await attempt(i % 2 ? b.url : a.url, "reset@example.test", "nope nope nope", addr(i))).status).toBe(401);
    expect((await attempt(b.url, "reset@example.test", PASSWORD, addr(5))).status).toBe(303);
    for (let i = 0; i < PER_ACCOUNT; i++) expect((await attempt(i % 2 ? b.url : a.url, "reset@example.test", "nope nope nope", addr(10 + i)).then((r) => r.status)), `after reset ${i + 1}`).toBe(401);
    expect((await attempt(a.url, "reset@example.test", PASSWORD, addr(20))).status).toBe(429);
  });

  it("blocks an address after its failures across accounts and processes, even for an account it never tried", async () => {
    const address = "203.0.113.77";
    const accounts = ["other1", "other2", "other3"];
    for (let i = 0; i < PER_ADDRESS; i++) {
      const r = await attempt(i % 2 ? b.url : a.url, `${accounts[i % 3]}@example.test`, `guess ${i} guess`, address);
      expect(r.status, `failure ${i + 1}`).toBe(401);
    }
    const blocked = await attempt(b.url, "fresh@example.test", PASSWORD, address);
    expect(blocked.status).toBe(429);
    expect(blocked.text).toMatch(/for this address/);
    // Another address still signs the same account in.
    expect((await attempt(a.url, "fresh@example.test", PASSWORD, "203.0.113.78")).status).toBe(303);
  });
});

describe("admin sign-in with Redis away", () => {
  let api: ApiUnderTest;
  beforeAll(async () => {
    // Nothing listens on port 1: the login counter cannot be reached.
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { REDIS_URL: "redis://127.0.0.1:1" } });
    await new AdminUserRepository(api.database.db).create({ email: "ops@example.test", role: "operator", password: PASSWORD });
  });
  afterAll(async () => api?.close());

  it("refuses sign-in (503) rather than counting attempts in memory", async () => {
    const page = await new CookieClient().get(`${api.url}/admin/login`);
    expect(page.status).toBe(200);
    const r = await signInWithPassword(new CookieClient(), api.url, "ops@example.test", PASSWORD);
    expect(r.status).toBe(503);
    expect(r.text).toContain('data-code="login_limits_unavailable"');
    expect(r.text).toMatch(/sign-in is unavailable/);
  });
});
