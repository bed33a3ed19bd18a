/**
 * Who may do what on the admin surfaces. Admin users are people (operators, compliance
 * reviewers, administrators), never tenant API keys. The admin role holds every permission
 * of the other two; a principal limited to some tenants sees nothing of the others.
 */
export const ADMIN_ROLES = ["operator", "compliance", "admin"] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

export const PERMISSIONS = {
  /** Queue dashboard, health page, metrics. */
  "pipeline.watch": ["operator", "admin"],
  /** Retry and clean jobs, redeliver webhooks. */
  "pipeline.operate": ["operator", "admin"],
  /** Quarantine list, detail, summary, exports. */
  "quarantine.review": ["compliance", "admin"],
  /** Release, delete permanently, extend retention (each with a justification). */
  "quarantine.act": ["compliance", "admin"],
  /** Request or approve the release of an upload quarantined as malware (two different admins). */
  "quarantine.override": ["admin"],
  /** Admin users, API keys, tenants, webhook endpoints. */
  "settings.manage": ["admin"],
  /** The audit trail itself (and its chain verification). */
  "audit.read": ["compliance", "admin"],
} as const satisfies Record<string, readonly AdminRole[]>;
export type Permission = keyof typeof PERMISSIONS;

export interface AdminPrincipal {
  id: string;
  email: string;
  name: string;
  role: AdminRole;
  /** The tenants this principal may see; null means every tenant. */
  tenantIds: readonly string[] | null;
}

export function isAdminRole(value: unknown): value is AdminRole {
  return typeof value === "string" && (ADMIN_ROLES as readonly string[]).includes(value);
}

export function can(principal: Pick<AdminPrincipal, "role">, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly AdminRole[]).includes(principal.role);
}

/** Whether the principal may see the tenant's uploads, events and reports. */
export function seesTenant(principal: Pick<AdminPrincipal, "tenantIds">, tenantId: string): boolean {
  return principal.tenantIds === null || principal.tenantIds.includes(tenantId);
}
