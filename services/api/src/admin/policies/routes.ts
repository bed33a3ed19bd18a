import type { Context } from "koa";
import type { Router } from "@koa/router";
import { InvalidRequestError, POLICY_FIELDS, VERDICT_EVENT_TYPES, type PolicyField } from "@intake/domain";
import { TenantPolicyRepository, TenantRepository } from "@intake/db";
import { errorResponse } from "../../http/errors.ts";
import { readJsonObject } from "../../http/json-body.ts";
import { readForm } from "../form.ts";
import type { AdminState } from "../guard.ts";
import type { AdminModuleContext } from "../module.ts";
import { deploymentTerms, TenantPolicies } from "../../policies/tenant-policies.ts";

/**
 * A tenant's policy (settings.manage: admins only): JSON at /v1/admin/tenants/:id/policy
 * (GET; PUT replaces the tenant's terms, `If-Match: "<version>"` refusing a change over a
 * newer one) and a page at /admin/tenants/:id/policy whose form does the same without
 * JavaScript. Both go through TenantPolicies: one validation, one audit row per change.
 */
export function mountTenantPolicies(router: Router, m: AdminModuleContext): void {
  const policies = m.policies ?? new TenantPolicies({ repository: new TenantPolicyRepository(m.db), tenants: new TenantRepository(m.db), deployment: deploymentTerms(m.config) });
  const json = m.guard.require("settings.manage");
  const page = m.guard.require("settings.manage", { page: true });
  const limit = m.config.http.bodyLimitBytes;
  const actor = (ctx: Context) => (ctx.state as AdminState).admin;

  router.get("/v1/admin/tenants/:id/policy", json, async (ctx) => {
    ctx.body = await policies.view(actor(ctx), ctx.params.id!);
  });
  router.put("/v1/admin/tenants/:id/policy", json, async (ctx) => {
    const expected = versionFromIfMatch(ctx.get("If-Match"));
    const body = await readJsonObject(ctx.req, limit);
    ctx.body = await policies.change(actor(ctx), ctx.params.id!, body, expected);
  });

  const show = async (ctx: Context, status = 200, extra: Record<string, unknown> = {}) => {
    const view = await policies.view(actor(ctx), ctx.params.id!);
    m.views.render(ctx, "tenant-policy", { title: `Policy of ${view.tenantId}`, view, fields: POLICY_FIELDS, eventTypes: VERDICT_EVENT_TYPES, ...extra }, status);
  };
  router.get("/admin/tenants/:id/policy", page, (ctx) => show(ctx));
  router.post("/admin/tenants/:id/policy", page, async (ctx) => {
    const form = (ctx.state as AdminState).form ?? (await readForm(ctx.req, limit));
    try {
      const expected = versionFromForm(form.get("version"));
      const after = await policies.change(actor(ctx), ctx.params.id!, policyFromForm(form), expected);
      await show(ctx, 200, { notice: `saved: version ${after.version}` });
    } catch (err) {
      const { status, body } = errorResponse(err);
      // Not found (another admin's tenant) and server failures keep their own page.
      if (status >= 500 || status === 404) throw err;
      await show(ctx, status, { error: body.error });
    }
  });
}

/** `If-Match: "3"` (or 3): the version the client last read; absent: no check. */
function versionFromIfMatch(raw: string): number | undefined {
  if (!raw) return undefined;
  const m = /^\s*(?:W\/)?"?(\d{1,9})"?\s*$/.exec(raw);
  if (!m) throw new InvalidRequestError("invalid_if_match", 'If-Match must be the policy version the client read, as "3"');
  return Number(m[1]);
}

function versionFromForm(raw: string | null): number | undefined {
  if (raw === null || raw === "") return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw new InvalidRequestError("invalid_policy", "version: the form's version field must be a whole number", { field: "version" });
  return Number(raw);
}

const INTEGER_FIELDS = ["maxSize", "urlTtlSeconds", "maxUrlTtlSeconds", "quarantineRetentionDays"] as const satisfies readonly PolicyField[];
const BOOLEAN_FIELDS = ["acceptArchives", "stripImageMetadata"] as const satisfies readonly PolicyField[];

/**
 * The page's form as a policy: an empty number or "default" choice means the default; the
 * type and event lists count only when their "use the default" box is unchecked. The result
 * goes through the same validation as JSON (validateTenantPolicy).
 */
export function policyFromForm(form: URLSearchParams): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (form.get("allowedTypesDefault") !== "on") out.allowedTypes = form.getAll("allowedTypes");
  for (const field of INTEGER_FIELDS) {
    const v = (form.get(field) ?? "").trim();
    if (v === "") continue;
    // Digits only: Number() would read "1e3", "0x10" or " " as numbers.
    if (!/^\d{1,16}$/.test(v)) throw new InvalidRequestError("invalid_policy", `${field}: must be a whole number (or empty for the default)`, { field });
    out[field] = Number(v);
  }
  for (const field of BOOLEAN_FIELDS) {
    const v = form.get(field) ?? "";
    if (v === "") continue;
    if (v !== "true" && v !== "false") throw new InvalidRequestError("invalid_policy", `${field}: must be true, false or empty for the default`, { field });
    out[field] = v === "true";
  }
  if (form.get("webhookEventsDefault") !== "on") out.webhookEvents = form.getAll("webhookEvents");
  return out;
}
