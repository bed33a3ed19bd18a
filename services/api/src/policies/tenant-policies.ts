import { policyInForce, type StoredTenantPolicy, type TenantPolicyRepository, type TenantRepository } from "@intake/db";
import { NotFoundError, resolvePolicy, seesTenant, validateTenantPolicy, VERDICT_EVENT_TYPES, type AdminPrincipal, type PolicyInForce, type PolicyTerms, type TenantPolicy, type TenantPolicyView } from "@intake/domain";
import type { Config } from "@intake/runtime";

/**
 * Tenants' policies as the API uses them: the policy in force for a new upload (the create
 * path, cached briefly per process), and the admins' reads and changes (the admin API and
 * pages). The rules live in the domain (tenant-policy.ts); the rows and audit in @intake/db.
 */

/** The deployment's terms (configuration): every tenant's defaults, and the bounds no policy leaves. */
export function deploymentTerms(config: Pick<Config, "policy" | "reaper">): PolicyTerms {
  return {
    allowedTypes: [...config.policy.allowedTypes].sort(),
    maxSize: config.policy.maxSize,
    urlTtlSeconds: config.policy.urlTtlSeconds,
    maxUrlTtlSeconds: config.policy.maxUrlTtlSeconds,
    quarantineRetentionDays: config.reaper.quarantineRetentionDays,
    acceptArchives: config.policy.acceptArchives,
    stripImageMetadata: config.policy.stripImageMetadata,
    webhookEvents: [...VERDICT_EVENT_TYPES],
  };
}

/** What the create path asks: the policy in force for this tenant now. */
export interface PoliciesInForce {
  inForce(tenantId: string): Promise<PolicyInForce>;
}

/** Everyone on the deployment's terms (no database of policies): what createRouter uses without one. */
export function deploymentPolicies(deployment: PolicyTerms): PoliciesInForce {
  const only = policyInForce(resolvePolicy(deployment, null), 0);
  return { inForce: async () => only };
}


/**
 * How long one API process reuses a tenant's policy for new uploads: the create path then
 * costs no database read per request. A change made through this process applies at once
 * here (the entry is dropped); other API processes pick it up within this time.
 */
export const POLICY_CACHE_MS = 2000;

export class TenantPolicies implements PoliciesInForce {
  private readonly repository: TenantPolicyRepository;
  private readonly tenants: Pick<TenantRepository, "byId">;
  readonly deployment: PolicyTerms;
  private readonly cacheMs: number;
  private readonly clock: () => number;
  private readonly cache = new Map<string, { at: number; value: Promise<PolicyInForce> }>();

  constructor(o: { repository: TenantPolicyRepository; tenants: Pick<TenantRepository, "byId">; deployment: PolicyTerms; cacheMs?: number; clock?: () => number }) {
    this.repository = o.repository;
    this.tenants = o.tenants;
    this.deployment = o.deployment;
    this.cacheMs = o.cacheMs ?? POLICY_CACHE_MS;
    this.clock = o.clock ?? Date.now;
  }

  inForce(tenantId: string): Promise<PolicyInForce> {
    const now = this.clock();
    const hit = this.cache.get(tenantId);
    if (hit && now - hit.at < this.cacheMs) return hit.value;
    const value = this.repository.get(tenantId).then((stored) => this.resolve(stored));
    // A failed read is not remembered: the next create asks the database again.
    value.catch(() => this.cache.delete(tenantId));
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(tenantId, { at: now, value });
    return value;
  }

  async view(actor: AdminPrincipal, tenantId: string): Promise<TenantPolicyView> {
    await this.visibleTenant(actor, tenantId);
    return this.viewOf(tenantId, await this.repository.get(tenantId));
  }

  /**
   * Replaces the tenant's policy with `raw` (validated against the deployment: bad input is a
   * 400 naming the field, nothing written). An admin limited to some tenants changes only
   * theirs: any other tenant is "not found", as for their API keys.
   */
  async change(actor: AdminPrincipal, tenantId: string, raw: unknown, expectedVersion?: number): Promise<TenantPolicyView> {
    await this.visibleTenant(actor, tenantId);
    const policy = validateTenantPolicy(raw, this.deployment);
    const { after } = await this.repository.change(tenantId, policy, { actorId: actor.id, deployment: this.deployment, ...(expectedVersion !== undefined ? { expectedVersion } : {}) });
    this.cache.delete(tenantId);
    return this.viewOf(tenantId, after);
  }

  private async visibleTenant(actor: AdminPrincipal, tenantId: string): Promise<void> {
    if (!seesTenant(actor, tenantId) || !(await this.tenants.byId(tenantId))) throw new NotFoundError("tenant", tenantId.slice(0, 64));
  }

  private resolve(stored: StoredTenantPolicy | null): PolicyInForce {
    return policyInForce(resolvePolicy(this.deployment, stored?.policy ?? null), stored?.version ?? 0);
  }

  private viewOf(tenantId: string, stored: StoredTenantPolicy | null): TenantPolicyView {
    return {
      tenantId,
      version: stored?.version ?? 0,
      policy: stored?.policy ?? {},
      inForce: this.resolve(stored),
      defaults: this.deployment,
      updatedAt: stored?.updatedAt.toISOString() ?? null,
      updatedBy: stored?.updatedBy ?? null,
    };
  }
}
