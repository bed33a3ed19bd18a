import type { Context } from "koa";
import type { Router } from "@koa/router";
import { Queue } from "bullmq";
import { ForbiddenError, NotFoundError, parseRescanRequest, seesTenant, type AdminPrincipal } from "@intake/domain";
import { RescanRunRepository, TenantRepository, UNPINNED, type RescanProgress, type RescanRun } from "@intake/db";
import { RESCAN_QUEUE, shortReason } from "@intake/pipeline";
import { errorResponse } from "../../http/errors.ts";
import { readJsonObject } from "../../http/json-body.ts";
import { readForm } from "../form.ts";
import type { AdminState } from "../guard.ts";
import type { AdminModule } from "../module.ts";

/**
 * Rescans after signature updates, for operators (pipeline.watch to see, pipeline.operate to
 * start or cancel): JSON at /v1/admin/rescans (GET: the recent runs with their progress and
 * the rescan queue; POST: a run for a tenant and/or verdict dates) and
 * /v1/admin/rescans/:id/cancel, and the page /admin/rescans whose forms do the same without
 * JavaScript. The API only writes the run (audited, with who started it); the rescan workers'
 * planner picks it up at its next tick and pins the signature version it scans with.
 *
 * A principal limited to some tenants sees and starts runs of those tenants only: a run
 * over every tenant needs one who sees them all.
 */
export const mountRescans: AdminModule = (router, ctx) => {
  const runs = new RescanRunRepository(ctx.db);
  const tenants = new TenantRepository(ctx.db);
  const queue = new Queue(RESCAN_QUEUE, { connection: ctx.redis, prefix: ctx.config.redis.prefix });
  queue.on("error", () => undefined); // shown as the queue's error on the page
  const watch = ctx.guard.require("pipeline.watch");
  const operate = ctx.guard.require("pipeline.operate");
  const limit = ctx.config.http.bodyLimitBytes;
  const actor = (c: Context) => (c.state as AdminState).admin;

  const view = async (principal: AdminPrincipal) => {
    const visible = (await runs.recent(50)).filter((r) => visibleTo(principal, r));
    const [progress, counts] = await Promise.all([Promise.all(visible.slice(0, 20).map((r) => runs.progress(r, ctx.now()))), queueCounts(queue)]);
    return { queue: counts, runs: progress.map(progressView), windowDays: ctx.config.rescan.windowDays, maxShare: ctx.config.rescan.maxShare, concurrency: ctx.config.rescan.concurrency };
  };
  const start = async (principal: AdminPrincipal, input: Record<string, unknown>): Promise<RescanRun> => {
    const req = parseRescanRequest(input, { now: ctx.now(), windowDays: ctx.config.rescan.windowDays });
    if (req.tenantId === null && principal.tenantIds !== null) throw new ForbiddenError("forbidden", "a rescan of every tenant needs an operator who sees every tenant: name a tenant");
    if (req.tenantId !== null && (!seesTenant(principal, req.tenantId) || !(await tenants.byId(req.tenantId)))) throw new NotFoundError("tenant", req.tenantId);
    const { run } = await runs.create({ trigger: "operator", signatureVersion: UNPINNED, tenantId: req.tenantId, verifiedFrom: req.verifiedFrom, verifiedTo: req.verifiedTo, startedBy: principal.id }, ctx.now());
    ctx.logger.info({ runId: run.id, tenantId: run.tenantId, by: principal.id }, "rescan started by an operator");
    return run;
  };
  const cancel = async (principal: AdminPrincipal, id: string): Promise<void> => {
    const run = await runs.get(id);
    if (!run || !visibleTo(principal, run)) throw new NotFoundError("rescan", id);
    await runs.cancel(id, { actorId: principal.id }, ctx.now());
  };

  router.get("/v1/admin/rescans", watch, async (c) => {
    c.body = await view(actor(c));
  });
  router.post("/v1/admin/rescans", operate, async (c) => {
    const run = await start(actor(c), await readJsonObject(c.req, limit));
    c.status = 201;
    c.body = { run: runView(run) };
  });
  router.post("/v1/admin/rescans/:id/cancel", operate, async (c) => {
    await cancel(actor(c), c.params.id!);
    c.body = { run: runView((await runs.get(c.params.id!))!) };
  });

  const page = async (c: Context, status = 200, extra: Record<string, unknown> = {}) => {
    ctx.views.render(c, "rescans", { title: "Rescans", rescans: await view(actor(c)), ...extra }, status);
  };
  router.get("/admin/rescans", ctx.guard.require("pipeline.watch", { page: true }), (c) => page(c));
  router.post("/admin/rescans", ctx.guard.require("pipeline.operate", { page: true }), async (c) => {
    const form = (c.state as AdminState).form ?? (await readForm(c.req, limit));
    try {
      const run = await start(actor(c), { tenantId: form.get("tenantId") ?? "", from: form.get("from") ?? "", to: form.get("to") ?? "" });
      await page(c, 201, { notice: `rescan ${run.id} started` });
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500) throw err;
      await page(c, status, { error: body.error });
    }
  });
  router.post("/admin/rescans/:id/cancel", ctx.guard.require("pipeline.operate", { page: true }), async (c) => {
    await cancel(actor(c), c.params.id!);
    await page(c, 200, { notice: `rescan ${c.params.id} cancelled` });
  });
};

function visibleTo(principal: AdminPrincipal, run: RescanRun): boolean {
  return principal.tenantIds === null || (run.tenantId !== null && seesTenant(principal, run.tenantId));
}

function runView(r: RescanRun) {
  return {
    id: r.id,
    trigger: r.trigger,
    status: r.status,
    signatureVersion: r.signatureVersion === UNPINNED ? null : r.signatureVersion,
    tenantId: r.tenantId,
    verifiedFrom: r.verifiedFrom.toISOString(),
    verifiedTo: r.verifiedTo?.toISOString() ?? null,
    startedBy: r.startedBy,
    walk: r.walk,
    startedAt: r.startedAt.toISOString(),
    finishedAt: r.finishedAt?.toISOString() ?? null,
  };
}

export type RescanRunView = ReturnType<typeof progressView>;

function progressView(p: RescanProgress) {
  const { queued, clean, quarantined, skipped, failed } = p.counts;
  return {
    ...runView(p.run),
    counts: { queued, done: clean + quarantined + skipped + failed, clean, matched: quarantined, skipped, failed },
    remaining: p.remaining,
    bytesScanned: p.bytesScanned,
    objectsPerSecond: p.ratePerSecond === null ? null : Math.round(p.ratePerSecond * 100) / 100,
    eta: p.eta?.toISOString() ?? null,
  };
}

async function queueCounts(queue: Queue): Promise<{ name: string; counts: Record<string, number> | null; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const counts = await Promise.race([
      queue.getJobCounts("waiting", "active", "delayed", "prioritized", "failed", "completed"),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no answer within 2000 ms")), 2000))),
    ]);
    return { name: queue.name, counts };
  } catch (err) {
    return { name: queue.name, counts: null, error: shortReason(err) };
  } finally {
    clearTimeout(timer);
  }
}
