import { createHash } from "node:crypto";
import type { Knex } from "knex";
import { canonicalTerms, checkedTerms, ConflictError, NotFoundError, resolvePolicy, type PolicyInForce, type PolicyTerms, type TenantPolicy } from "@intake/domain";
import { AuditLog } from "./audit-log.ts";
import { atomically, Statement } from "./connection.ts";

/**
 * Tenants' own policies (@intake/domain tenant-policy.ts): the terms each overrides, with a
 * version counted up by every change, each change one unit with its audit row (before and
 * after, the terms in force before and after). The policy in force on an upload is recorded
 * on the upload itself (UploadRepository.create), so nothing here is read by the pipeline.
 */
export interface StoredTenantPolicy {
  tenantId: string;
  policy: TenantPolicy;
  /** 1 for the first change; a tenant without a row is at version 0 (the defaults). */
  version: number;
  updatedAt: Date;
  updatedBy: string | null;
}

export interface PolicyChange {
  before: StoredTenantPolicy | null;
  after: StoredTenantPolicy;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** The terms with their version and digests, as recorded on an upload (PolicyInForce). */
export function policyInForce(terms: PolicyTerms, version: number): PolicyInForce {
  return { ...terms, version, digest: sha256(canonicalTerms(terms)), checksDigest: sha256(canonicalTerms(checkedTerms(terms))) };
}

const SELECT = `select tenant_id, policy, version, updated_at, updated_by from tenant_policies where tenant_id = ?`;
// Conditional on the version read: of two admins saving at once, the second is told (409)
// instead of silently undoing the first one's change.
const UPDATE = `update tenant_policies set policy = ?, webhook_events = ?, version = ?, updated_at = ?, updated_by = ? where tenant_id = ? and version = ?`;
const INSERT = `insert into tenant_policies (tenant_id, policy, webhook_events, version, updated_at, updated_by) values (?, ?, ?, ?, ?, ?) on conflict (tenant_id) do nothing`;

export class TenantPolicyRepository {
  private readonly db: Knex;
  private readonly audit: AuditLog;
  constructor(db: Knex) {
    this.db = db;
    this.audit = new AuditLog(db);
  }

  async get(tenantId: string): Promise<StoredTenantPolicy | null> {
    const row = await this.db("tenant_policies").where({ tenant_id: tenantId }).first();
    return row ? toStored(row) : null;
  }

  /**
   * Replaces a tenant's policy (already validated: validateTenantPolicy) and records who did
   * it, in one unit. `expectedVersion` (the version the admin's form showed) refuses a change
   * made over someone else's newer one; the write is conditional on the version read anyway.
   */
  async change(tenantId: string, policy: TenantPolicy, o: { actorId: string; expectedVersion?: number; deployment: PolicyTerms }, now = new Date()): Promise<PolicyChange> {
    return atomically(this.db, async (tx) => {
      if (!(await tx.first(new Statement("select id from tenants where id = ?", [tenantId])))) throw new NotFoundError("tenant", tenantId);
      const row = await tx.first(new Statement(SELECT, [tenantId]));
      const before = row ? toStored(row) : null;
      const current = before?.version ?? 0;
      if (o.expectedVersion !== undefined && o.expectedVersion !== current) throw changedMeanwhile(tenantId, o.expectedVersion, current);
      const version = current + 1;
      const events = policy.webhookEvents === undefined ? null : JSON.stringify(policy.webhookEvents);
      const written = before
        ? await tx.run(new Statement(UPDATE, [JSON.stringify(policy), events, version, now.getTime(), o.actorId, tenantId, current]))
        : await tx.run(new Statement(INSERT, [tenantId, JSON.stringify(policy), events, version, now.getTime(), o.actorId]));
      if (written !== 1) throw changedMeanwhile(tenantId, current, current + 1);
      const after: StoredTenantPolicy = { tenantId, policy, version, updatedAt: now, updatedBy: o.actorId };
      const inForceBefore = policyInForce(resolvePolicy(o.deployment, before?.policy ?? null), current);
      const inForceAfter = policyInForce(resolvePolicy(o.deployment, policy), version);
      await this.audit.append(
        tx,
        {
          actor: "admin",
          actorId: o.actorId,
          action: "admin.tenant_policy_changed",
          tenantId,
          detail: { versionBefore: current, version, before: before?.policy ?? null, after: policy, inForceBefore, inForceAfter },
        },
        now,
      );
      return { before, after };
    });
  }
}

function changedMeanwhile(tenantId: string, expected: number, current: number): ConflictError {
  return new ConflictError("policy_changed", `tenant ${tenantId}'s policy is at version ${current}, not ${expected}: someone changed it meanwhile; reload it and apply your change again`, { tenantId, expectedVersion: expected, version: current });
}

function toStored(r: Record<string, any>): StoredTenantPolicy {
  return { tenantId: r.tenant_id, policy: JSON.parse(r.policy) as TenantPolicy, version: Number(r.version), updatedAt: new Date(Number(r.updated_at)), updatedBy: r.updated_by ?? null };
}
