import { Router } from "@koa/router";
import { mountSignIn } from "./auth/routes.ts";
import type { AdminModule, AdminModuleContext } from "./module.ts";
import { mountMetrics } from "./metrics/routes.ts";
import { mountOperators } from "./operators/routes.ts";
import { mountRescans } from "./operators/rescans.ts";
import { mountQuarantine } from "./quarantine/routes.ts";
import { mountQuarantineActions } from "./quarantine/actions.ts";
import { mountWebhookAdmin } from "./webhooks/routes.ts";
import { mountTenantPolicies } from "./policies/routes.ts";

export { adminGuard, SESSION_COOKIE, CSRF_FIELD, CSRF_HEADER, type AdminGuard, type AdminState } from "./guard.ts";
export { createViews, type Views } from "./views.ts";
export type { AdminModule, AdminModuleContext } from "./module.ts";

/** Every admin area, in mounting order. A new area is added here and nowhere else. */
export const ADMIN_MODULES: readonly AdminModule[] = [mountSignIn, mountOperators, mountRescans, mountMetrics, mountQuarantine, mountQuarantineActions, mountWebhookAdmin, mountTenantPolicies];

/**
 * The admin surfaces (pages under /admin, JSON under /v1/admin, /metrics) on a router of
 * their own, mounted before the tenant API's: the tenant API's key check never runs for
 * them, and every one of their routes goes through ctx.guard instead.
 */
export function createAdminRouter(ctx: AdminModuleContext, modules: readonly AdminModule[] = ADMIN_MODULES): Router {
  const router = new Router();
  for (const mount of modules) mount(router, ctx);
  return router;
}
