import { isAdminRole, textFault, type AdminRole } from "@intake/domain";

/**
 * What an identity provider's claims say about an admin: the role from the configured role
 * claim and, when a tenants claim is configured, the tenants a reviewer is limited to. The
 * role and the scope follow the provider on every sign-in, so an IdP group change takes
 * effect at the next one. Anything unclear is refused with the reason, never guessed.
 */
export interface OidcIdentity {
  issuer: string;
  subject: string;
  email: string;
  name: string;
  role: AdminRole;
  tenantIds: string[] | null;
}

export type ClaimsVerdict = { ok: true; identity: OidcIdentity } | { ok: false; code: string; message: string };

export interface ClaimSettings {
  roleClaim: string;
  tenantsClaim?: string;
}

const EMAIL = /^[^\s@\u0000-\u001f\u007f]{1,64}@[^\s@\u0000-\u001f\u007f]{1,255}$/;
const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** The tenants claim's value for "every tenant". */
export const ALL_TENANTS = "*";

export function identityFromClaims(claims: Record<string, unknown>, s: ClaimSettings): ClaimsVerdict {
  const issuer = typeof claims.iss === "string" ? claims.iss : "";
  const subject = typeof claims.sub === "string" ? claims.sub : "";
  if (!issuer || !subject) return refuse("claims_incomplete", "the identity provider sent no issuer or subject");

  const role = roleOf(claims[s.roleClaim]);
  if (!role) {
    const seen = claims[s.roleClaim] === undefined ? "no such claim" : `${JSON.stringify(claims[s.roleClaim]).slice(0, 80)}`;
    return refuse("role_not_allowed", `the identity provider's "${s.roleClaim}" claim must be operator, compliance or admin (got ${seen}); ask your administrator to assign you one of those roles`);
  }

  let tenantIds: string[] | null = null;
  if (s.tenantsClaim) {
    const t = tenantsOf(claims[s.tenantsClaim]);
    // Configured means required: a reviewer whose scope did not arrive must not see everything.
    if (t === undefined) return refuse("tenants_claim_invalid", `the identity provider's "${s.tenantsClaim}" claim must list tenant ids (or "${ALL_TENANTS}" for every tenant)`);
    tenantIds = t;
  }

  const emailClaim = typeof claims.email === "string" ? claims.email.trim().toLowerCase() : "";
  if (!EMAIL.test(emailClaim)) return refuse("email_missing", "the identity provider sent no email address (the email scope and claim are needed)");
  if (claims.email_verified === false) return refuse("email_unverified", "the identity provider says this email address is not verified");
  // A display name with control characters (a NUL, which PostgreSQL refuses) is not used: the email stands in.
  const name = typeof claims.name === "string" && claims.name.trim() && !textFault(claims.name, { invisible: false }) ? claims.name.trim().slice(0, 200) : emailClaim;
  return { ok: true, identity: { issuer, subject, email: emailClaim, name, role, tenantIds } };
}

/** A role: the claim's string, or a list holding exactly one of the admin roles. */
function roleOf(v: unknown): AdminRole | null {
  if (isAdminRole(v)) return v;
  if (Array.isArray(v)) {
    const roles = v.filter(isAdminRole);
    if (roles.length === 1) return roles[0]!;
  }
  return null;
}

/** null: every tenant; undefined: not a usable value. */
function tenantsOf(v: unknown): string[] | null | undefined {
  const list = typeof v === "string" ? v.split(/[\s,]+/).filter(Boolean) : Array.isArray(v) ? v : undefined;
  if (!list || list.length === 0 || !list.every((t): t is string => typeof t === "string")) return undefined;
  if (list.includes(ALL_TENANTS)) return list.length === 1 ? null : undefined;
  if (!list.every((t) => TENANT_ID.test(t))) return undefined;
  return [...new Set(list)].sort();
}

function refuse(code: string, message: string): ClaimsVerdict {
  return { ok: false, code, message };
}
