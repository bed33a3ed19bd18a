import { canonicalType } from "./content-types.ts";
import { InvalidRequestError } from "./errors.ts";
import { quoteForMessage } from "./filename.ts";
import { quarantine, type Verdict } from "./verdict.ts";
import { isVerdictEventType, VERDICT_EVENT_TYPES, type VerdictEventType } from "./verdict-events.ts";

/**
 * A tenant's policy: what its uploads are held to. The deployment's configuration gives the
 * defaults and the outer bounds; a tenant's policy overrides some of them, never past the
 * bounds. The terms in force when an upload is declared are recorded on it (PolicyInForce),
 * and the pipeline judges the upload by those, not by whatever the policy says by then.
 */
export interface PolicyTerms {
  /** Canonical media types, sorted: a subset of the deployment's (archives left out when they are refused). */
  allowedTypes: string[];
  /** The largest upload, in bytes: at most the deployment's. */
  maxSize: number;
  /** Default lifetime of an upload URL, in seconds. */
  urlTtlSeconds: number;
  /** The longest lifetime a client may ask for: at most the deployment's. */
  maxUrlTtlSeconds: number;
  /** Days a quarantined object's bytes are kept before the reaper purges them. */
  quarantineRetentionDays: number;
  /** Archive formats (ARCHIVE_TYPES) as an upload's type: refused everywhere when false. */
  acceptArchives: boolean;
  /** Verified images are promoted as a copy without their EXIF/XMP/IPTC metadata (image-metadata.ts). */
  stripImageMetadata: boolean;
  /** The verdict events the tenant's webhook endpoints are sent (each endpoint may filter further). */
  webhookEvents: VerdictEventType[];
}

/** A tenant's own policy as an admin set it: the terms it overrides, each absent one defaulted. */
export type TenantPolicy = Partial<PolicyTerms>;

/**
 * The policy recorded on an upload at create. `version` counts the tenant's policy changes
 * (0: the tenant never had one of its own). `digest` is the SHA-256 of canonicalTerms over
 * every term; `checksDigest` over the terms the pipeline's checks read (checkedTerms): two
 * uploads with equal checksDigest were, and would again be, judged alike (a verdict cache's
 * "same policy"), whatever their URL lifetimes, retention or webhook events.
 */
export interface PolicyInForce extends PolicyTerms {
  version: number;
  digest: string;
  checksDigest: string;
}

/** Bounds no policy leaves, whatever the deployment says. */
export const POLICY_BOUNDS = {
  minUrlTtlSeconds: 60,
  minRetentionDays: 1,
  /** Ten years: past that a quarantine is an archive, and a typo (36500) should not pass. */
  maxRetentionDays: 3650,
  maxTypes: 200,
} as const;

/**
 * Archive formats, as canonical media types (file-type's names and the common aliases). An
 * Office document is a ZIP container too, but not an archive: it stays an allowed type of its
 * own. A policy that refuses archives refuses these as declared types and as detected types.
 */
export const ARCHIVE_TYPES: ReadonlySet<string> = new Set([
  "application/zip",
  "application/gzip",
  "application/x-gzip",
  "application/x-tar",
  "application/x-7z-compressed",
  "application/x-rar-compressed",
  "application/vnd.rar",
  "application/x-bzip2",
  "application/x-xz",
  "application/zstd",
  "application/x-lzip",
  "application/x-compress",
  "application/x-cpio",
  "application/x-unix-archive",
  "application/x-archive",
  "application/x-arj",
  "application/x-lzh-compressed",
  "application/vnd.ms-cab-compressed",
  "application/java-archive",
  "application/x-iso9660-image",
  "application/x-apple-diskimage",
]);

export function isArchiveType(type: string): boolean {
  const c = canonicalType(type);
  return c !== null && ARCHIVE_TYPES.has(c);
}

export const POLICY_FIELDS = ["allowedTypes", "maxSize", "urlTtlSeconds", "maxUrlTtlSeconds", "quarantineRetentionDays", "acceptArchives", "stripImageMetadata", "webhookEvents"] as const satisfies readonly (keyof PolicyTerms)[];
export type PolicyField = (typeof POLICY_FIELDS)[number];

function invalid(field: string, message: string, extra: Record<string, unknown> = {}): InvalidRequestError {
  return new InvalidRequestError("invalid_policy", `${field}: ${message}`, { field, ...extra });
}

function integerIn(raw: unknown, field: PolicyField, min: number, max: number, unit: string): number {
  if (typeof raw !== "number" || !Number.isSafeInteger(raw)) throw invalid(field, `must be an integer number of ${unit}`);
  if (raw < min || raw > max) throw invalid(field, `must be from ${min} to ${max} ${unit} (the deployment's bounds)`, { min, max });
  return raw;
}

function booleanField(raw: unknown, field: PolicyField): boolean {
  if (typeof raw !== "boolean") throw invalid(field, "must be true or false");
  return raw;
}

/**
 * Checks a tenant's policy as an admin sent it (JSON: absent or null = the default), against
 * the deployment's terms: allowed types a subset of the deployment's, sizes and lifetimes
 * within its limits, retention within POLICY_BOUNDS. Throws invalid_policy naming the field.
 */
export function validateTenantPolicy(raw: unknown, deployment: PolicyTerms): TenantPolicy {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new InvalidRequestError("invalid_policy", "a policy must be a JSON object of the terms it overrides");
  const given = raw as Record<string, unknown>;
  const unknown = Object.keys(given).find((k) => !(POLICY_FIELDS as readonly string[]).includes(k));
  if (unknown !== undefined) throw new InvalidRequestError("unknown_field", `unknown policy field ${quoteForMessage(unknown, 70)}; the fields are ${POLICY_FIELDS.join(", ")}`, { field: unknown.slice(0, 70) });
  const has = (f: PolicyField) => Object.hasOwn(given, f) && given[f] !== null && given[f] !== undefined;
  const out: TenantPolicy = {};
  if (has("allowedTypes")) out.allowedTypes = typeSubset(given.allowedTypes, deployment.allowedTypes);
  if (has("maxSize")) out.maxSize = integerIn(given.maxSize, "maxSize", 1, deployment.maxSize, "bytes");
  if (has("maxUrlTtlSeconds")) out.maxUrlTtlSeconds = integerIn(given.maxUrlTtlSeconds, "maxUrlTtlSeconds", POLICY_BOUNDS.minUrlTtlSeconds, deployment.maxUrlTtlSeconds, "seconds");
  if (has("urlTtlSeconds")) {
    const cap = out.maxUrlTtlSeconds ?? deployment.maxUrlTtlSeconds;
    out.urlTtlSeconds = integerIn(given.urlTtlSeconds, "urlTtlSeconds", POLICY_BOUNDS.minUrlTtlSeconds, cap, "seconds");
  }
  if (has("quarantineRetentionDays")) out.quarantineRetentionDays = integerIn(given.quarantineRetentionDays, "quarantineRetentionDays", POLICY_BOUNDS.minRetentionDays, POLICY_BOUNDS.maxRetentionDays, "days");
  if (has("acceptArchives")) out.acceptArchives = booleanField(given.acceptArchives, "acceptArchives");
  if (has("stripImageMetadata")) out.stripImageMetadata = booleanField(given.stripImageMetadata, "stripImageMetadata");
  if (has("webhookEvents")) out.webhookEvents = eventList(given.webhookEvents);
  return out;
}

function typeSubset(raw: unknown, deploymentTypes: readonly string[]): string[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > POLICY_BOUNDS.maxTypes) throw invalid("allowedTypes", `must be a non-empty list of at most ${POLICY_BOUNDS.maxTypes} media types`);
  const out = new Set<string>();
  for (const t of raw) {
    const type = typeof t === "string" ? canonicalType(t) : null;
    if (type === null) throw invalid("allowedTypes", `${quoteForMessage(String(t), 100)} is not a media type`);
    if (!deploymentTypes.includes(type)) throw invalid("allowedTypes", `${type} is not among the deployment's allowed types (ALLOWED_TYPES)`, { type });
    out.add(type);
  }
  return [...out].sort();
}

function eventList(raw: unknown): VerdictEventType[] {
  if (!Array.isArray(raw)) throw invalid("webhookEvents", `must be a list of events (${VERDICT_EVENT_TYPES.join(", ")}); [] sends none`);
  const bad = raw.find((e) => !isVerdictEventType(e));
  if (bad !== undefined) throw invalid("webhookEvents", `${quoteForMessage(String(bad), 70)} is not an event; the events are ${VERDICT_EVENT_TYPES.join(", ")}`);
  return [...new Set(raw as VerdictEventType[])].sort();
}

/**
 * The terms in force for a tenant: its policy over the deployment's defaults, then held to
 * the deployment's bounds again (a policy saved before the configuration narrowed, say an
 * allowed type since removed, never widens it).
 */
export function resolvePolicy(deployment: PolicyTerms, tenant: TenantPolicy | null): PolicyTerms {
  const t = tenant ?? {};
  const acceptArchives = t.acceptArchives ?? deployment.acceptArchives;
  const maxUrlTtlSeconds = Math.min(t.maxUrlTtlSeconds ?? deployment.maxUrlTtlSeconds, deployment.maxUrlTtlSeconds);
  return {
    allowedTypes: (t.allowedTypes ?? deployment.allowedTypes).filter((type) => deployment.allowedTypes.includes(type) && (acceptArchives || !ARCHIVE_TYPES.has(type))).sort(),
    maxSize: Math.min(t.maxSize ?? deployment.maxSize, deployment.maxSize),
    urlTtlSeconds: Math.min(t.urlTtlSeconds ?? deployment.urlTtlSeconds, maxUrlTtlSeconds),
    maxUrlTtlSeconds,
    quarantineRetentionDays: t.quarantineRetentionDays ?? deployment.quarantineRetentionDays,
    acceptArchives,
    stripImageMetadata: t.stripImageMetadata ?? deployment.stripImageMetadata,
    webhookEvents: [...(t.webhookEvents ?? deployment.webhookEvents)].sort(),
  };
}

/** The terms the pipeline's checks read: what decides a verdict (checksDigest). */
export function checkedTerms(t: PolicyTerms): Pick<PolicyTerms, "allowedTypes" | "maxSize" | "acceptArchives" | "stripImageMetadata"> {
  return { allowedTypes: [...t.allowedTypes].sort(), maxSize: t.maxSize, acceptArchives: t.acceptArchives, stripImageMetadata: t.stripImageMetadata };
}

/**
 * One text per set of terms: keys sorted, lists sorted, no whitespace, prefixed with the
 * format's name so a later format cannot collide with this one. Its SHA-256 is a digest.
 */
export function canonicalTerms(terms: Partial<PolicyTerms>): string {
  const sorted = Object.fromEntries(
    Object.keys(terms)
      .sort()
      .map((k) => {
        const v = (terms as Record<string, unknown>)[k];
        return [k, Array.isArray(v) ? [...v].sort() : v];
      }),
  );
  return `intake.policy.v1:${JSON.stringify(sorted)}`;
}

/** Only the terms of PolicyTerms, in their types, from a stored snapshot (or null when it is not one). */
export function termsFrom(raw: unknown): PolicyTerms | null {
  if (typeof raw !== "object" || raw === null) return null;
  const r = raw as Record<string, unknown>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");
  if (!strings(r.allowedTypes) || !strings(r.webhookEvents)) return null;
  for (const k of ["maxSize", "urlTtlSeconds", "maxUrlTtlSeconds", "quarantineRetentionDays"]) if (typeof r[k] !== "number") return null;
  if (typeof r.acceptArchives !== "boolean" || typeof r.stripImageMetadata !== "boolean") return null;
  return {
    allowedTypes: r.allowedTypes as string[],
    maxSize: r.maxSize as number,
    urlTtlSeconds: r.urlTtlSeconds as number,
    maxUrlTtlSeconds: r.maxUrlTtlSeconds as number,
    quarantineRetentionDays: r.quarantineRetentionDays as number,
    acceptArchives: r.acceptArchives,
    stripImageMetadata: r.stripImageMetadata,
    webhookEvents: r.webhookEvents as VerdictEventType[],
  };
}

/**
 * A declared type the policy refuses because it is an archive: refused with the code an
 * unlisted type gets (content_type_not_allowed), saying why. Other types are left to the
 * allowlist (validateDeclaration, with the policy's allowedTypes).
 */
export function refuseArchiveDeclaration(contentType: unknown, policy: Pick<PolicyInForce, "acceptArchives" | "allowedTypes" | "version">): void {
  if (policy.acceptArchives || typeof contentType !== "string") return;
  const type = canonicalType(contentType);
  if (type !== null && ARCHIVE_TYPES.has(type)) {
    throw new InvalidRequestError("content_type_not_allowed", `contentType ${type} is an archive, and this tenant's policy accepts no archives`, { allowed: policy.allowedTypes, acceptArchives: false, policyVersion: policy.version });
  }
}

/**
 * The pipeline's word on a detected archive under a policy that refuses archives (before the
 * allowlist, so the reason says why). Null when archives are accepted or the type is none.
 */
export function archiveVerdict(sniffedType: string | undefined, policy: Pick<PolicyTerms, "acceptArchives">): Verdict | null {
  if (policy.acceptArchives || sniffedType === undefined) return null;
  const type = canonicalType(sniffedType) ?? sniffedType;
  return ARCHIVE_TYPES.has(type) ? quarantine("type_not_allowed", `the content is ${type}, an archive, and this upload's policy accepts no archives`) : null;
}

/** What the pipeline's type and size checks hold an upload to. */
export interface CheckRules {
  allowedTypes: readonly string[];
  maxSize: number;
  acceptArchives: boolean;
}

/**
 * The rules an upload is judged by: the policy recorded on it at create, never today's. An
 * upload declared before policies were recorded has none and is held to the deployment's
 * rules (`deployment`, from configuration), which were the only ones then.
 */
export function checkRulesFor(upload: { policy: PolicyInForce | null }, deployment: { allowedTypes: readonly string[]; maxSize: number }): CheckRules {
  const p = upload.policy;
  return p ? { allowedTypes: p.allowedTypes, maxSize: p.maxSize, acceptArchives: p.acceptArchives } : { allowedTypes: deployment.allowedTypes, maxSize: deployment.maxSize, acceptArchives: true };
}

/** A tenant's policy as GET/PUT /v1/admin/tenants/:id/policy answer it (the API and the admin client). */
export interface TenantPolicyView {
  tenantId: string;
  /** 0: the tenant never had a policy of its own (the defaults). */
  version: number;
  /** The terms the tenant overrides ({} = all defaults): what a PUT replaces. */
  policy: TenantPolicy;
  /** What new uploads of the tenant get: its terms over the defaults, within the deployment's bounds. */
  inForce: PolicyInForce;
  defaults: PolicyTerms;
  updatedAt: string | null;
  updatedBy: string | null;
}
