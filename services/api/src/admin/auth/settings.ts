import { randomBytes } from "node:crypto";
import type { AdminUser, ApiKeyInfo, ApiKeyRepository, AuditLog, TenantRepository, AdminUserRepository } from "@intake/db";
import { ForbiddenError, InvalidRequestError, isAdminRole, NotFoundError, seesTenant, textFault, textFaultMessage, type AdminPrincipal, type AdminRole } from "@intake/domain";

/**
 * The administrators' settings (permission settings.manage): admin users and their roles
 * and tenant scopes, tenants, and tenants' API keys. One place for the rules and the audit
 * rows, shared by the JSON routes and the pages. Every action names the admin who took it.
 */
export interface UserChanges {
  role?: AdminRole;
  tenantIds?: string[] | null;
  name?: string;
  disabled?: boolean;
}

export class AdminSettings {
  private readonly users: AdminUserRepository;
  private readonly tenants: TenantRepository;
  private readonly keys: ApiKeyRepository;
  private readonly audit: AuditLog;
  private readonly now: () => Date;

  constructor(o: { users: AdminUserRepository; tenants: TenantRepository; keys: ApiKeyRepository; audit: AuditLog; now: () => Date }) {
    this.users = o.users;
    this.tenants = o.tenants;
    this.keys = o.keys;
    this.audit = o.audit;
    this.now = o.now;
  }

  /** A new admin user; without a password one is generated and returned once. */
  async createUser(actor: AdminPrincipal, input: { email: string; role: AdminRole; name?: string; tenantIds?: string[] | null; password?: string }): Promise<{ user: AdminUser; generatedPassword?: string }> {
    assertEveryTenant(actor, "create admin users");
    const generated = input.password === undefined ? generatePassword() : undefined;
    const now = this.now();
    const user = await this.users.create({ email: input.email, role: input.role, ...(input.name ? { name: input.name } : {}), tenantIds: input.tenantIds ?? null, password: input.password ?? generated!, createdBy: actor.id }, now);
    await this.audit.record({ actor: "admin", actorId: actor.id, action: "admin.user_created", detail: { userId: user.id, email: user.email, role: user.role, tenantIds: user.tenantIds } }, now);
    return { user, ...(generated ? { generatedPassword: generated } : {}) };
  }

  async updateUser(actor: AdminPrincipal, id: string, changes: UserChanges): Promise<AdminUser> {
    assertEveryTenant(actor, "change admin users");
    const before = await this.users.byId(id);
    if (!before) throw new NotFoundError("admin_user", id);
    // An admin cannot lock themselves out (and so the last admin cannot either).
    if (id === actor.id && ((changes.role !== undefined && changes.role !== before.role) || changes.disabled === true)) {
      throw new ForbiddenError("own_access", "you cannot change your own role or disable yourself; ask another admin");
    }
    const now = this.now();
    const after = (await this.users.update(id, changes, now))!;
    await this.audit.record({ actor: "admin", actorId: actor.id, action: changes.disabled === true ? "admin.user_disabled" : "admin.user_updated", detail: { userId: id, before: pick(before), after: pick(after) } }, now);
    return after;
  }

  listUsers(actor: AdminPrincipal): Promise<AdminUser[]> {
    assertEveryTenant(actor, "manage admin users");
    return this.users.list();
  }

  async listTenants(actor: AdminPrincipal) {
    return (await this.tenants.list()).filter((t) => seesTenant(actor, t.id));
  }

  async createTenant(actor: AdminPrincipal, id: string, name?: string) {
    assertEveryTenant(actor, "create tenants");
    const now = this.now();
    const tenant = await this.tenants.create(id, name, now);
    await this.audit.record({ actor: "admin", actorId: actor.id, action: "admin.tenant_created", tenantId: tenant.id, detail: { name: tenant.name } }, now);
    return tenant;
  }

  async listKeys(actor: AdminPrincipal, tenantId?: string): Promise<ApiKeyInfo[]> {
    return (await this.keys.list(tenantId)).filter((k) => seesTenant(actor, k.tenantId));
  }

  /** A key for an existing tenant; the secret is returned here and never again. */
  async createKey(actor: AdminPrincipal, tenantId: string, name: string): Promise<{ key: string; info: ApiKeyInfo }> {
    // Another tenant's key would be that tenant's whole API: outside the scope, "not found".
    if (!seesTenant(actor, tenantId) || !(await this.tenants.byId(tenantId))) throw new NotFoundError("tenant", tenantId);
    const cleanName = name.trim();
    if (!cleanName || cleanName.length > 200) throw new InvalidRequestError("invalid_name", "a key needs a name of 1 to 200 characters (what uses it)");
    const fault = textFault(cleanName, { invisible: false });
    if (fault) throw new InvalidRequestError("invalid_name", textFaultMessage("a key's name", fault), { field: "name" });
    const now = this.now();
    const created = await this.keys.create(tenantId, cleanName, {}, now);
    await this.audit.record({ actor: "admin", actorId: actor.id, action: "admin.api_key_created", tenantId, detail: { keyId: created.info.id, name: cleanName } }, now);
    return created;
  }

  async revokeKey(actor: AdminPrincipal, keyId: string): Promise<void> {
    const info = (await this.keys.list()).find((k) => k.id === keyId);
    if (!info || !seesTenant(actor, info.tenantId)) throw new NotFoundError("api_key", keyId);
    const now = this.now();
    await this.keys.revoke(keyId, now);
    await this.audit.record({ actor: "admin", actorId: actor.id, action: "admin.api_key_revoked", tenantId: info.tenantId, detail: { keyId } }, now);
  }
}

const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * An admin limited to some tenants keeps to them here too: admin users (whose roles and
 * scopes reach every tenant, their own scope included) and new tenants are for admins who
 * see every tenant; otherwise a limited admin could widen their own scope, or make an
 * unlimited accomplice, in one request.
 */
function assertEveryTenant(actor: AdminPrincipal, what: string): void {
  if (actor.tenantIds !== null) throw new ForbiddenError("tenant_scope_limited", `only an admin who sees every tenant may ${what}; yours is limited to ${actor.tenantIds.join(", ") || "no tenant"}`);
}

/** 24 base64url characters (144 random bits): shown once, then only its scrypt hash exists. */
export function generatePassword(): string {
  return randomBytes(18).toString("base64url");
}

/** Reads a role from a request (JSON or form), or says what is allowed. */
export function roleFrom(v: unknown): AdminRole {
  if (!isAdminRole(v)) throw new InvalidRequestError("invalid_role", "role must be operator, compliance or admin");
  return v;
}

/**
 * Tenant scope from a request: a list (JSON), or a comma/space separated string (a form
 * field); null, an empty string or "*" mean every tenant.
 */
export function tenantScopeFrom(v: unknown): string[] | null {
  if (v === null || v === undefined) return null;
  const list = typeof v === "string" ? v.split(/[\s,]+/).filter(Boolean) : Array.isArray(v) ? v : null;
  if (!list || !list.every((t) => typeof t === "string")) throw new InvalidRequestError("invalid_tenants", "tenantIds must be a list of tenant ids, or null for every tenant");
  if (list.length === 0 || (list.length === 1 && list[0] === "*")) return null;
  const bad = (list as string[]).find((t) => !TENANT_ID.test(t));
  if (bad !== undefined) throw new InvalidRequestError("invalid_tenants", `not a tenant id: ${JSON.stringify(bad.slice(0, 70))}`);
  return [...new Set(list as string[])].sort();
}

export function userView(u: AdminUser) {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role,
    tenantIds: u.tenantIds,
    createdAt: u.createdAt.toISOString(),
    lastLoginAt: u.lastLoginAt?.toISOString() ?? null,
    disabledAt: u.disabledAt?.toISOString() ?? null,
    signIn: { password: u.hasPassword, oidc: u.oidc },
  };
}

export function keyView(k: ApiKeyInfo) {
  return { id: k.id, tenantId: k.tenantId, name: k.name, createdAt: k.createdAt.toISOString(), lastUsedAt: k.lastUsedAt?.toISOString() ?? null, revokedAt: k.revokedAt?.toISOString() ?? null };
}

function pick(u: AdminUser) {
  return { role: u.role, tenantIds: u.tenantIds, name: u.name, disabled: u.disabledAt !== null };
}
