import type { Context } from "koa";
import { WebhookRepository } from "@intake/db";
import { can, InvalidRequestError, VERDICT_EVENT_TYPES, type AdminPrincipal } from "@intake/domain";
import { OutboxRelay, WebhookQueue } from "@intake/webhooks";
import { errorResponse } from "../../http/errors.ts";
import { readJsonObject, rejectUnknownFields } from "../../http/json-body.ts";
import { readForm } from "../form.ts";
import type { AdminState } from "../guard.ts";
import type { AdminModule } from "../module.ts";
import { attemptView, deliveryView, endpointView, WebhookAdmin } from "./webhook-admin.ts";

/**
 * Verdict webhooks for admins and operators. JSON under /v1/admin/webhooks for scripts,
 * pages under /admin/webhooks (forms without JavaScript):
 * - endpoints (settings.manage): create (the secret is shown once), disable, enable,
 *   rotate the secret (the old one signs too for an overlap), end that overlap, delete;
 * - the delivery log (pipeline.watch) and redelivery of a delivery or an event
 *   (pipeline.operate), with the same webhook-id.
 */
export const mountWebhookAdmin: AdminModule = (router, m) => {
  const webhooks = new WebhookRepository(m.db);
  let relay: OutboxRelay | null = null;
  const admin = new WebhookAdmin({
    webhooks,
    audit: m.audit,
    requireHttps: m.config.env === "production",
    allowAddresses: m.config.webhooks.allowAddresses,
    defaultOverlapSeconds: m.config.webhooks.secretOverlapSeconds,
    now: m.now,
    // A redelivery is handed to the queue from here at once; if Redis is away the
    // webhooks worker's relay finds the row within its poll anyway.
    relay: async () => {
      relay ??= new OutboxRelay({ webhooks, logger: m.logger, queue: new WebhookQueue({ connection: m.redis, prefix: m.config.redis.prefix, attempts: m.config.webhooks.attempts, backoffMs: m.config.webhooks.backoffMs }) });
      await relay.pass().catch((err: unknown) => m.logger.warn({ err: { message: (err as Error).message } }, "redelivery not queued yet; the worker's relay will"));
    },
  });
  const limit = m.config.http.bodyLimitBytes;
  const who = (ctx: Context): AdminPrincipal => (ctx.state as AdminState).admin;
  const body = (ctx: Context) => readJsonObject(ctx.req, limit);
  const manage = m.guard.require("settings.manage");
  const watch = m.guard.require("pipeline.watch");
  const operate = m.guard.require("pipeline.operate");

  // JSON
  router.get("/v1/admin/webhooks/endpoints", manage, async (ctx) => {
    ctx.body = { endpoints: (await admin.endpoints(who(ctx))).map(endpointView) };
  });
  router.post("/v1/admin/webhooks/endpoints", manage, async (ctx) => {
    const b = await body(ctx);
    rejectUnknownFields(b, ["tenantId", "url", "events", "description"]);
    const { endpoint, secret } = await admin.create(who(ctx), { tenantId: b.tenantId, url: b.url, events: b.events, description: b.description });
    ctx.status = 201;
    ctx.body = { endpoint: endpointView(endpoint), secret };
  });
  router.post("/v1/admin/webhooks/endpoints/:id/disable", manage, async (ctx) => {
    const b = await body(ctx);
    rejectUnknownFields(b, ["reason"]);
    ctx.body = { endpoint: endpointView(await admin.setEnabled(who(ctx), ctx.params.id!, false, typeof b.reason === "string" ? b.reason : undefined)) };
  });
  router.post("/v1/admin/webhooks/endpoints/:id/enable", manage, async (ctx) => {
    ctx.body = { endpoint: endpointView(await admin.setEnabled(who(ctx), ctx.params.id!, true)) };
  });
  router.post("/v1/admin/webhooks/endpoints/:id/rotate-secret", manage, async (ctx) => {
    const b = await body(ctx);
    rejectUnknownFields(b, ["overlapSeconds"]);
    const { endpoint, secret } = await admin.rotateSecret(who(ctx), ctx.params.id!, b.overlapSeconds);
    ctx.body = { endpoint: endpointView(endpoint), secret };
  });
  router.post("/v1/admin/webhooks/endpoints/:id/end-secret-overlap", manage, async (ctx) => {
    ctx.body = { endpoint: endpointView(await admin.endSecretOverlap(who(ctx), ctx.params.id!)) };
  });
  router.delete("/v1/admin/webhooks/endpoints/:id", manage, async (ctx) => {
    await admin.remove(who(ctx), ctx.params.id!);
    ctx.status = 204;
  });
  router.get("/v1/admin/webhooks/deliveries", watch, async (ctx) => {
    const q = (k: string) => (typeof ctx.query[k] === "string" ? (ctx.query[k] as string) : undefined);
    const n = q("limit") ? Number(q("limit")) : undefined;
    const deliveries = await admin.deliveries(who(ctx), { endpointId: q("endpoint"), eventId: q("event"), status: q("status"), ...(n && Number.isInteger(n) && n > 0 ? { limit: n } : {}) });
    ctx.body = { deliveries: deliveries.map(deliveryView) };
  });
  router.get("/v1/admin/webhooks/deliveries/:id", watch, async (ctx) => {
    const { delivery, attempts } = await admin.delivery(who(ctx), ctx.params.id!);
    ctx.body = { delivery: deliveryView(delivery), attempts: attempts.map(attemptView) };
  });
  router.post("/v1/admin/webhooks/deliveries/:id/redeliver", operate, async (ctx) => {
    ctx.status = 202;
    ctx.body = { delivery: deliveryView(await admin.redeliver(who(ctx), ctx.params.id!)) };
  });
  router.post("/v1/admin/webhooks/events/:id/redeliver", operate, async (ctx) => {
    ctx.status = 202;
    ctx.body = { deliveries: (await admin.redeliverEvent(who(ctx), ctx.params.id!)).map(deliveryView) };
  });

  // Pages
  const page = (p: Parameters<typeof m.guard.require>[0]) => m.guard.require(p, { page: true });
  const form = async (ctx: Context) => (ctx.state as AdminState).form ?? (await readForm(ctx.req, limit));
  const listPage = async (ctx: Context, status = 200, extra: Record<string, unknown> = {}) => {
    const principal = who(ctx);
    const endpoints = (await webhooks.endpoints(principal.tenantIds)).map(endpointView);
    const deliveries = (await admin.deliveries(principal, {})).map(deliveryView);
    m.views.render(ctx, "webhooks", { title: "Webhooks", endpoints, deliveries, eventTypes: VERDICT_EVENT_TYPES, defaultOverlapSeconds: m.config.webhooks.secretOverlapSeconds, canManage: can(principal, "settings.manage"), canOperate: can(principal, "pipeline.operate"), ...extra }, status);
  };
  /** A form's action: on a refusal the page again with the reason; on success what it shows. */
  const act = async (ctx: Context, show: (ctx: Context, status?: number, extra?: Record<string, unknown>) => Promise<void>, work: (f: URLSearchParams) => Promise<Record<string, unknown>>) => {
    try {
      const extra = await work(await form(ctx));
      await show(ctx, 200, extra);
    } catch (err) {
      const { status, body: e } = errorResponse(err);
      if (status >= 500) throw err;
      await show(ctx, status, { error: e.error });
    }
  };

  router.get("/admin/webhooks", page("pipeline.watch"), (ctx) => listPage(ctx));
  router.post("/admin/webhooks/endpoints", page("settings.manage"), (ctx) =>
    act(ctx, listPage, async (f) => {
      const { endpoint, secret } = await admin.create(who(ctx), { tenantId: f.get("tenantId") ?? "", url: f.get("url") ?? "", events: f.getAll("events").length ? f.getAll("events") : undefined, description: f.get("description") ?? "" });
      return { notice: `created endpoint ${endpoint.id} for ${endpoint.tenantId}`, createdSecret: { endpointId: endpoint.id, secret } };
    }),
  );
  router.post("/admin/webhooks/endpoints/:id/:action", page("settings.manage"), (ctx) =>
    act(ctx, listPage, async (f) => {
      const id = ctx.params.id!;
      switch (ctx.params.action) {
        case "disable":
          await admin.setEnabled(who(ctx), id, false, f.get("reason") ?? undefined);
          return { notice: `disabled ${id}` };
        case "enable":
          await admin.setEnabled(who(ctx), id, true);
          return { notice: `enabled ${id}` };
        case "rotate-secret": {
          const { endpoint, secret } = await admin.rotateSecret(who(ctx), id, f.get("overlapSeconds") ?? undefined);
          const until = endpoint.previousSecretExpiresAt;
          return { notice: `new secret for ${id}; ${until ? `the old one also signs until ${until.toISOString()}` : "the old one no longer signs"}`, createdSecret: { endpointId: id, secret } };
        }
        case "end-secret-overlap":
          await admin.endSecretOverlap(who(ctx), id);
          return { notice: `the previous secret of ${id} no longer signs` };
        case "delete":
          await admin.remove(who(ctx), id);
          return { notice: `deleted ${id}` };
        default:
          throw new InvalidRequestError("invalid_action", "action must be disable, enable, rotate-secret, end-secret-overlap or delete");
      }
    }),
  );
  const deliveryPage = async (ctx: Context, status = 200, extra: Record<string, unknown> = {}) => {
    const { delivery, attempts } = await admin.delivery(who(ctx), ctx.params.id!);
    m.views.render(ctx, "webhooks-delivery", { title: `Delivery ${delivery.id}`, delivery: deliveryView(delivery), attempts: attempts.map(attemptView), canOperate: can(who(ctx), "pipeline.operate"), ...extra }, status);
  };
  router.get("/admin/webhooks/deliveries/:id", page("pipeline.watch"), (ctx) => deliveryPage(ctx));
  router.post("/admin/webhooks/deliveries/:id/redeliver", page("pipeline.operate"), (ctx) =>
    act(ctx, deliveryPage, async () => {
      const d = await admin.redeliver(who(ctx), ctx.params.id!);
      return { notice: `redelivery queued (round ${d.round}, same webhook-id ${d.eventId})` };
    }),
  );
  router.post("/admin/webhooks/events/:id/redeliver", page("pipeline.operate"), (ctx) =>
    act(ctx, listPage, async () => {
      const ds = await admin.redeliverEvent(who(ctx), ctx.params.id!);
      return { notice: `event ${ctx.params.id} redelivered to ${ds.length} endpoint(s)` };
    }),
  );
};
