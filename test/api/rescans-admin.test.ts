import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, RescanRunRepository, TenantRepository } from "@intake/db";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * Operators start and watch rescans (issue 12 §6): /v1/admin/rescans and /admin/rescans on
 * the real API (fauxqs, SQLite, Redis). The API writes the run, audited with who started it;
 * the rescan workers plan it (test/pipeline/rescan.test.ts).
 */
describe("rescans on the operators' admin surfaces", () => {
  let api: ApiUnderTest;
  let operator: AdminClient;
  let runs: RescanRunRepository;
  beforeAll(async () => {
    api = await startApiUnderTest({ storage: "fauxqs", database: "sqlite" });
    const tenants = new TenantRepository(api.database.db);
    for (const id of ["acme", "globex"]) await tenants.create(id).catch(() => undefined);
    operator = await signInAs(api, "operator");
    runs = new RescanRunRepository(api.database.db);
  }, 60_000);
  afterAll(async () => {
    await api?.close();
  });

  const count = async () => (await runs.recent(1000)).length;
  const CLI = fileURLToPath(new URL("../../services/api/src/rescan-cli.ts", import.meta.url));
  const cli = (args: string[]) => {
    const db = api.database.settings;
    const r = spawnSync(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH!, DATA_DIR: api.dataDir, ...(db.client === "pg" ? { DATABASE_URL: db.url } : { SQLITE_PATH: db.filename }) }, encoding: "utf8", timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  it("npm run rescan -- start|list|cancel: a run from the command line, audited as the cli with who", async () => {
    const started = cli(["start", "--tenant", "acme", "--from", "2026-11-01", "--by", "ops-alice"]);
    expect(started, started.err).toMatchObject({ code: 0 });
    const id = started.out.trim();
    expect(id).toMatch(/^rsc_[A-Za-z0-9_-]{16}$/);
    expect(await runs.get(id)).toMatchObject({ trigger: "operator", tenantId: "acme", verifiedFrom: new Date("2026-11-01T00:00:00Z"), startedBy: "ops-alice", status: "running" });
    const audit = (await new AuditLog(api.database.db).search({ actions: ["rescan.started"], limit: 50 })).items.find((r) => r.detail.runId === id);
    expect(audit).toMatchObject({ actor: "cli", actorId: "ops-alice" });
    const list = cli(["list"]);
    expect(list.code).toBe(0);
    expect(list.out).toContain(id);
    expect(cli(["cancel", id, "--by", "ops-alice"])).toMatchObject({ code: 0 });
    expect((await runs.get(id))!.status).toBe("cancelled");
    // Refusals: a clear message, nothing written.
    const before = await count();
    expect(cli(["start", "--from", "2026-02-30"])).toMatchObject({ code: 1, err: expect.stringContaining("invalid_rescan: from is not a real date") });
    expect(cli(["start", "--tenant", "nobody"])).toMatchObject({ code: 1, err: expect.stringContaining("tenant_not_found") });
    expect(cli(["cancel", "rsc_nope"])).toMatchObject({ code: 1, err: expect.stringContaining("rescan_not_found") });
    expect(cli(["start", "--tenantt", "acme"]).code).toBe(64);
    expect(await count()).toBe(before);
  });

  it("an operator starts a run for a tenant and a date range; it is audited and listed with its progress and the queue", async () => {
    const res = await operator.request("POST", "/v1/admin/rescans", { json: { tenantId: "acme", from: "2026-11-01", to: "2026-11-15" } });
    expect(res.status).toBe(201);
    const { run } = (await res.json()) as { run: Record<string, unknown> };
    expect(run).toMatchObject({ trigger: "operator", status: "running", tenantId: "acme", verifiedFrom: "2026-11-01T00:00:00.000Z", verifiedTo: "2026-11-15T00:00:00.000Z", startedBy: operator.user.id, signatureVersion: null });
    const audit = (await new AuditLog(api.database.db).search({ actions: ["rescan.started"], limit: 10 })).items.find((r) => r.detail.runId === run.id);
    expect(audit).toMatchObject({ actor: "admin", actorId: operator.user.id, tenantId: "acme" });

    const list = await operator.request("GET", "/v1/admin/rescans");
    expect(list.status).toBe(200);
    const body = (await list.json()) as { queue: { name: string; counts: Record<string, number> | null }; runs: { id: string; counts: Record<string, number>; remaining: number; eta: string | null }[] };
    expect(body.queue).toMatchObject({ name: "intake-rescan", counts: expect.objectContaining({ waiting: 0 }) });
    expect(body.runs.find((r) => r.id === run.id)).toMatchObject({ counts: { queued: 0, done: 0, clean: 0, matched: 0, skipped: 0, failed: 0 }, remaining: 0, eta: null });
  });

  it.each([
    [{ from: "2026-02-31" }, 400, "invalid_rescan"],
    [{ from: "2026-11-10", to: "2026-11-01" }, 400, "invalid_rescan"],
    [{ tenantId: "acme", window: 3 }, 400, "invalid_rescan"],
    [{ tenantId: "nobody" }, 404, "tenant_not_found"],
    [{ tenantId: "ACME; drop table" }, 400, "invalid_rescan"],
  ])("refuses %j with %i %s and writes nothing", async (json, status, code) => {
    const before = await count();
    const res = await operator.request("POST", "/v1/admin/rescans", { json });
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    expect(await count()).toBe(before);
  });

  it("compliance may neither see nor start rescans; an operator limited to a tenant starts and sees that tenant's only", async () => {
    const compliance = await signInAs(api, "compliance");
    expect((await compliance.request("GET", "/v1/admin/rescans")).status).toBe(403);
    expect((await compliance.request("POST", "/v1/admin/rescans", { json: { tenantId: "acme" } })).status).toBe(403);

    const limited = await signInAs(api, "operator", { tenantIds: ["globex"] });
    const everyone = await limited.request("POST", "/v1/admin/rescans", { json: {} });
    expect(everyone.status).toBe(403);
    expect((await limited.request("POST", "/v1/admin/rescans", { json: { tenantId: "acme" } })).status).toBe(404);
    const own = await limited.request("POST", "/v1/admin/rescans", { json: { tenantId: "globex" } });
    expect(own.status).toBe(201);
    const seen = ((await (await limited.request("GET", "/v1/admin/rescans")).json()) as { runs: { tenantId: string | null }[] }).runs;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => r.tenantId === "globex")).toBe(true);
    // Nor may it cancel another tenant's run (it does not exist for it).
    const acmeRun = (await runs.recent(100)).find((r) => r.tenantId === "acme")!;
    expect((await limited.request("POST", `/v1/admin/rescans/${acmeRun.id}/cancel`, { json: {} })).status).toBe(404);
    expect((await runs.get(acmeRun.id))!.status).toBe("running");
  });

  it("the page lists runs, starts one from its form (CSRF token required) and cancels one", async () => {
    const page = await operator.request("GET", "/admin/rescans", { headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('action="/admin/rescans"');
    expect(html).toContain("intake-rescan");

    const before = await count();
    const forged = await operator.request("POST", "/admin/rescans", { form: { tenantId: "acme" }, csrf: false, headers: { accept: "text/html" } });
    expect(forged.status).toBe(403);
    expect(await count()).toBe(before);

    const started = await operator.request("POST", "/admin/rescans", { form: { tenantId: "globex", from: "2026-11-20", to: "" }, headers: { accept: "text/html" } });
    expect(started.status).toBe(201);
    expect(await started.text()).toMatch(/rescan rsc_[A-Za-z0-9_-]+ started/);
    const run = (await runs.recent(1))[0]!;
    expect(run).toMatchObject({ tenantId: "globex", verifiedFrom: new Date("2026-11-20T00:00:00Z"), verifiedTo: null, startedBy: operator.user.id });

    const bad = await operator.request("POST", "/admin/rescans", { form: { from: "someday" }, headers: { accept: "text/html" } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('data-code="invalid_rescan"');

    const cancelled = await operator.request("POST", `/admin/rescans/${run.id}/cancel`, { form: {}, headers: { accept: "text/html" } });
    expect(cancelled.status).toBe(200);
    expect((await runs.get(run.id))!.status).toBe("cancelled");
    const audit = (await new AuditLog(api.database.db).search({ actions: ["rescan.cancelled"], limit: 10 })).items.find((r) => r.detail.runId === run.id);
    expect(audit).toMatchObject({ actor: "admin", actorId: operator.user.id });
  });
});
