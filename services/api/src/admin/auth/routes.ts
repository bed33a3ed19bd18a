import { ApiKeyRepository, TenantRepository } from "@intake/db";
import { can, type Permission } from "@intake/domain";
import type { AdminState } from "../guard.ts";
import type { AdminModule } from "../module.ts";
import { LoginLimits } from "./login-limits.ts";
import { mountOidcSignIn } from "./oidc.ts";
import { mountSettings } from "./settings-routes.ts";
import { AdminSettings } from "./settings.ts";
import { mountPasswordSignIn } from "./sign-in.ts";

/**
 * Admin access: password and OpenID Connect sign-in, sign-out, the admin home page, and the
 * administrators' settings (users, tenants, API keys).
 */
export const mountSignIn: AdminModule = (router, m) => {
  mountPasswordSignIn(router, m, new LoginLimits(m.redis, m.config.admin.loginLimits, m.config.redis.prefix));
  mountOidcSignIn(router, m);
  router.get("/admin", m.guard.session({ page: true }), (ctx) => {
    const admin = (ctx.state as AdminState).admin;
    const sections = HOME_SECTIONS.filter((s) => can(admin, s.permission));
    m.views.render(ctx, "home", { title: "Admin", sections });
  });
  mountSettings(router, m, new AdminSettings({ users: m.users, tenants: new TenantRepository(m.db), keys: new ApiKeyRepository(m.db), audit: m.audit, now: m.now }));
};

/** What each role finds on the home page: a link is shown only with its permission. */
const HOME_SECTIONS: { permission: Permission; href: string; label: string; about: string }[] = [
  { permission: "pipeline.watch", href: "/admin/health", label: "Health", about: "clamd, signatures, queues, dead letters, stuck uploads" },
  { permission: "pipeline.watch", href: "/admin/queues", label: "Queues", about: "each pipeline stage, failed jobs, retry and clean" },
  { permission: "pipeline.watch", href: "/admin/webhooks", label: "Webhooks", about: "endpoints, deliveries, redelivery" },
  { permission: "quarantine.review", href: "/admin/quarantine", label: "Quarantine", about: "what was caught, why, and for whom; release or delete" },
  { permission: "quarantine.review", href: "/admin/quarantine/summary", label: "Summary", about: "counts by reason, tenant and day; CSV exports" },
  { permission: "settings.manage", href: "/admin/users", label: "Admin users", about: "people, roles and tenant scopes" },
  { permission: "settings.manage", href: "/admin/tenants", label: "Tenants", about: "the applications that upload" },
  { permission: "settings.manage", href: "/admin/api-keys", label: "API keys", about: "tenants' keys: create, revoke" },
];
