import type { Context } from "koa";
import type { Router } from "@koa/router";
import { InvalidRequestError } from "@intake/domain";
import { errorResponse } from "../../http/errors.ts";
import { readJsonObject, rejectUnknownFields, type JsonObject } from "../../http/json-body.ts";
import { readForm } from "../form.ts";
import type { AdminState } from "../guard.ts";
import type { AdminModuleContext } from "../module.ts";
import { keyView, roleFrom, tenantScopeFrom, userView, type AdminSettings, type UserChanges } from "./settings.ts";

/**
 * Settings for admins (settings.manage): JSON under /v1/admin/{users,tenants,api-keys} for
 * scripts, and pages under /admin/{users,tenants,api-keys} whose forms work without
 * JavaScript. Both go through AdminSettings, so the rules and the audit rows are the same.
 */
export function mountSettings(router: Router, m: AdminModuleContext, settings: AdminSettings): void {
  const json = m.guard.require("settings.manage");
  const page = m.guard.require("settings.manage", { page: true });
  const limit = m.config.http.bodyLimitBytes;
  const actor = (ctx: Context) => (ctx.state as AdminState).admin;
  const body = (ctx: Context) => readJsonObject(ctx.req, limit);

  // JSON
  router.get("/v1/admin/users", json, async (ctx) => {
    ctx.body = { users: (await settings.listUsers(actor(ctx))).map(userView) };
  });
  router.post("/v1/admin/users", json, async (ctx) => {
    const b = await body(ctx);
    rejectUnknownFields(b, ["email", "name", "role", "tenantIds", "password"]);
    const { user, generatedPassword } = await settings.createUser(actor(ctx), {
      email: stringField(b, "email", true)!,
      role: roleFrom(b.role),
      ...(b.name !== undefined ? { name: stringField(b, "name")! } : {}),
      tenantIds: tenantScopeFrom(b.tenantIds),
      ...(b.password !== undefined ? { password: stringField(b, "password")! } : {}),
    });
    ctx.status = 201;
    ctx.body = { user: userView(user), ...(generatedPassword ? { password: generatedPassword } : {}) };
  });
  router.patch("/v1/admin/users/:id", json, async (ctx) => {
    const b = await body(ctx);
    rejectUnknownFields(b, ["name", "role", "tenantIds", "disabled"]);
    const changes: UserChanges = {};
    if (b.role !== undefined) changes.role = roleFrom(b.role);
    if (b.tenantIds !== undefined) changes.tenantIds = tenantScopeFrom(b.tenantIds);
    if (b.name !== undefined) changes.name = stringField(b, "name")!;
    if (b.disabled !== undefined) {
      if (typeof b.disabled !== "boolean") throw new InvalidRequestError("invalid_field", "disabled must be true or false");
      changes.disabled = b.disabled;
    }
    ctx.body = { user: userView(await settings.updateUser(actor(ctx), ctx.params.id!, changes)) };
  });
  router.get("/v1/admin/tenants", json, async (ctx) => {
    ctx.body = { tenants: (await settings.listTenants(actor(ctx))).map((t) => ({ ...t, createdAt: t.createdAt.toISOString() })) };
  });
  router.post("/v1/admin/tenants", json, async (ctx) => {
    const b = await body(ctx);
    rejectUnknownFields(b, ["id", "name"]);
    const t = await settings.createTenant(actor(ctx), stringField(b, "id", true)!, stringField(b, "name"));
    ctx.status = 201;
    ctx.body = { tenant: { ...t, createdAt: t.createdAt.toISOString() } };
  });
  router.get("/v1/admin/api-keys", json, async (ctx) => {
    const tenant = typeof ctx.query.tenant === "string" ? ctx.query.tenant : undefined;
    ctx.body = { apiKeys: (await settings.listKeys(actor(ctx), tenant)).map(keyView) };
  });
  router.post("/v1/admin/api-keys", json, async (ctx) => {
    const b = await body(ctx);
    rejectUnknownFields(b, ["tenantId", "name"]);
    const { key, info } = await settings.createKey(actor(ctx), stringField(b, "tenantId", true)!, stringField(b, "name", true)!);
    ctx.status = 201;
    ctx.body = { key, apiKey: keyView(info) };
  });
  router.delete("/v1/admin/api-keys/:id", json, async (ctx) => {
    await settings.revokeKey(actor(ctx), ctx.params.id!);
    ctx.status = 204;
  });

  // Pages
  const form = async (ctx: Context) => (ctx.state as AdminState).form ?? (await readForm(ctx.req, limit));
  const usersPage = async (ctx: Context, status = 200, extra: Record<string, unknown> = {}) =>
    m.views.render(ctx, "users", { title: "Admin users", users: (await settings.listUsers(actor(ctx))).map(userView), ...extra }, status);
  const tenantsPage = async (ctx: Context, status = 200, extra: Record<string, unknown> = {}) =>
    m.views.render(ctx, "tenants", { title: "Tenants", tenants: await settings.listTenants(actor(ctx)), ...extra }, status);
  const keysPage = async (ctx: Context, status = 200, extra: Record<string, unknown> = {}) =>
    m.views.render(ctx, "api-keys", { title: "API keys", keys: (await settings.listKeys(actor(ctx))).map(keyView), tenants: await settings.listTenants(actor(ctx)), ...extra }, status);
  /** A form's action: on a refusal the same page again with the reason, not a JSON error. */
  const act = async (ctx: Context, show: (ctx: Context, status?: number, extra?: Record<string, unknown>) => Promise<void>, work: (f: URLSearchParams) => Promise<Record<string, unknown>>) => {
    try {
      const extra = await work(await form(ctx));
      await show(ctx, 200, extra);
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500) throw err;
      await show(ctx, status, { error: body.error });
    }
  };

  router.get("/admin/users", page, (ctx) => usersPage(ctx));
  router.post("/admin/users", page, (ctx) =>
    act(ctx, usersPage, async (f) => {
      const password = f.get("password") || undefined;
      const { user, generatedPassword } = await settings.createUser(actor(ctx), { email: f.get("email") ?? "", role: roleFrom(f.get("role")), name: f.get("name") ?? "", tenantIds: tenantScopeFrom(f.get("tenantIds") ?? ""), ...(password ? { password } : {}) });
      return { notice: `created ${user.email} (${user.role})`, generatedPassword, createdEmail: user.email };
    }),
  );
  router.post("/admin/users/:id", page, (ctx) =>
    act(ctx, usersPage, async (f) => {
      const changes: UserChanges = {};
      const action = f.get("action");
      if (action === "disable") changes.disabled = true;
      else if (action === "enable") changes.disabled = false;
      else if (action === "update") {
        changes.role = roleFrom(f.get("role"));
        changes.tenantIds = tenantScopeFrom(f.get("tenantIds") ?? "");
      } else throw new InvalidRequestError("invalid_action", "action must be update, disable or enable");
      const user = await settings.updateUser(actor(ctx), ctx.params.id!, changes);
      return { notice: `${user.email}: ${action === "update" ? `role ${user.role}, tenants ${user.tenantIds?.join(", ") ?? "all"}` : `${action}d`}` };
    }),
  );
  router.get("/admin/tenants", page, (ctx) => tenantsPage(ctx));
  router.post("/admin/tenants", page, (ctx) =>
    act(ctx, tenantsPage, async (f) => {
      const t = await settings.createTenant(actor(ctx), (f.get("id") ?? "").trim(), f.get("name") ?? undefined);
      return { notice: `created tenant ${t.id}` };
    }),
  );
  router.get("/admin/api-keys", page, (ctx) => keysPage(ctx));
  router.post("/admin/api-keys", page, (ctx) =>
    act(ctx, keysPage, async (f) => {
      const { key, info } = await settings.createKey(actor(ctx), f.get("tenantId") ?? "", f.get("name") ?? "");
      return { notice: `created key ${info.id} for ${info.tenantId}`, createdKey: key };
    }),
  );
  router.post("/admin/api-keys/:id/revoke", page, (ctx) =>
    act(ctx, keysPage, async () => {
      await settings.revokeKey(actor(ctx), ctx.params.id!);
      return { notice: `revoked key ${ctx.params.id}` };
    }),
  );
}

function stringField(b: JsonObject, name: string, required = false): string | undefined {
  const v = b[name];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || (required && v.trim() === "")) throw new InvalidRequestError("invalid_field", `${name} must be a${required ? " non-empty" : ""} string`, { field: name });
  return v;
}
