import type { Upload } from "./upload.ts";
import type { UploadStatus } from "./upload-state.ts";

/**
 * The verdict cache's rules (issue 12 §4): clamd's answer about some bytes, reused for the
 * same bytes instead of scanning them again. Only clamd's part is reused: every other check
 * (size, type, the content checks) runs on every upload, because their answers depend on
 * the upload (its declaration, its policy) and they are cheap next to clamd.
 *
 * - The key is the sha256 the pipeline computed over the bytes it read itself (never a
 *   client's declared sha256 on its own), the signature version the worker's signature
 *   watch names (engine, database version and date, and the digest of the operators' rules:
 *   signature-watch.ts), and the scan context: the digest of the upload's recorded policy
 *   terms that its checks read (PolicyInForce.checksDigest) and of clamd's limits, which
 *   change clamd's answer without changing its VERSION.
 * - A clean entry is reused only under exactly that key, and by default only for the tenant
 *   whose upload made it (a shared good-cache would tell a tenant that someone uploaded
 *   these exact bytes, by a faster answer). A malware entry is reused for every tenant:
 *   the tenant already holds the malware, and learns at most that someone else did too.
 * - A clean entry dies with its signature version (the next database may detect what this
 *   one missed). A malware entry outlives signature updates, since an update rarely
 *   un-detects, but not a change of the operators' rules (a removed rule may be the one
 *   that matched), of the engine, or a database that went back (a rollback may be the fix
 *   of a false positive), and not its maximum age.
 * - An entry is written in the unit of the upload's final transition out of `deciding`
 *   (verified, or quarantined as malware): never for a verdict that later fails, never for
 *   a recheck's or an override's outcome, never by a hit (its age counts from clamd's scan).
 */
export type CachedOutcome = "clean" | "malware";

export interface VerdictCacheEntry {
  sha256: string;
  outcome: CachedOutcome;
  tenantId: string;
  signatureVersion: string;
  scanContext: string;
  /** clamd's signature name (malware), else null. */
  signature: string | null;
  sourceUploadId: string;
  recordedAt: Date;
}

export interface VerdictCacheSettings {
  /** Look entries up (and write them): VERDICT_CACHE. */
  enabled: boolean;
  /** Reuse a clean entry for any tenant's identical bytes (VERDICT_CACHE_SHARE_CLEAN; default: its own tenant only). */
  shareClean: boolean;
  /** A malware entry is reused for at most this long after it was recorded (VERDICT_CACHE_MALWARE_MAX_AGE_HOURS). */
  malwareMaxAgeHours: number;
  /** A clean entry too (its signature version usually ends it first): VERDICT_CACHE_CLEAN_MAX_AGE_HOURS. */
  cleanMaxAgeHours: number;
}

/**
 * The text the scan context digest is taken of: the upload's checked policy terms (or the
 * deployment's rules, for an upload recorded before policies were) and clamd's limits.
 * Prefixed with its format's name, so a later format never collides with this one.
 */
export function scanContextText(policy: { checksDigest: string } | null, deploymentRules: { allowedTypes: readonly string[]; maxSize: number }, clamdLimits: { maxFileSize: number; maxScanSize: number; maxRecursion: number; maxStreamBytes?: number }): string {
  const rules = policy ? { policy: policy.checksDigest } : { deployment: { allowedTypes: [...deploymentRules.allowedTypes].sort(), maxSize: deploymentRules.maxSize } };
  const limits = { maxFileSize: clamdLimits.maxFileSize, maxScanSize: clamdLimits.maxScanSize, maxRecursion: clamdLimits.maxRecursion, maxStreamBytes: clamdLimits.maxStreamBytes ?? null };
  return `intake.scan-context.v1:${JSON.stringify({ rules, limits })}`;
}

/**
 * The entry an upload's final transition records, or null when it records none. Only the
 * pipeline's own verdicts count (from `deciding`), made by a scan that recorded its context
 * (the cache was on): verified and clean with no signature (an override's promotion carries
 * the signature it accepted, and comes from `rechecking` anyway), or quarantined as malware
 * with clamd's signature name. Other findings (size, type, content, an image the library
 * could not decode) are about the upload, not about what clamd said of the bytes.
 */
export function entryFor(upload: Upload, from: UploadStatus, now: Date): VerdictCacheEntry | null {
  // A hit teaches nothing new, and re-recording it would keep an entry young for as long as
  // its bytes keep coming: the age counts from clamd's own scan.
  if (from !== "deciding" || upload.verdictFromCache || !upload.sha256 || !upload.scannerVersion || !upload.scanContext) return null;
  const base = { sha256: upload.sha256, tenantId: upload.tenantId, signatureVersion: upload.scannerVersion, scanContext: upload.scanContext, sourceUploadId: upload.id, recordedAt: now };
  if (upload.status === "verified" && upload.verdict === "clean" && upload.signature === null && upload.reason === null) return { ...base, outcome: "clean", signature: null };
  if (upload.status === "quarantined" && upload.reason === "malware" && upload.signature) return { ...base, outcome: "malware", signature: upload.signature };
  return null;
}

/** What a lookup asks about. */
export interface CacheQuery {
  sha256: string;
  tenantId: string;
  signatureVersion: string;
  scanContext: string;
}

/** The parts of a signature watch's version string (`<engine>/<db version>/<db date>/rules:<digest>`). */
export interface SignatureVersionParts {
  engine: string;
  database: string;
  date: string;
  rules: string;
}

/** Null for anything that is not a watch's version string (then only the exact string matches). */
export function signatureVersionParts(version: string): SignatureVersionParts | null {
  const at = version.lastIndexOf("/rules:");
  if (at < 0) return null;
  const head = version.slice(0, at).split("/");
  if (head.length !== 3 || head.some((p) => p === "")) return null;
  return { engine: head[0]!, database: head[1]!, date: head[2]!, rules: version.slice(at + "/rules:".length) };
}

/**
 * Whether a malware entry still stands under the signatures loaded now: the same engine and
 * operators' rules, a database that did not go back (by its version number, or for a
 * database without one, the test database, by its date), and younger than its maximum age.
 */
export function malwareEntryHolds(entryVersion: string, currentVersion: string): boolean {
  if (entryVersion === currentVersion) return true;
  const e = signatureVersionParts(entryVersion);
  const c = signatureVersionParts(currentVersion);
  if (!e || !c || e.engine !== c.engine || e.rules !== c.rules) return false;
  const ev = Number(e.database);
  const cv = Number(c.database);
  if (Number.isSafeInteger(ev) && Number.isSafeInteger(cv)) return cv >= ev;
  if (e.database !== c.database) return false; // "none" against a numbered database: another kind of database
  const ed = Date.parse(e.date);
  const cd = Date.parse(c.date);
  return Number.isFinite(ed) && Number.isFinite(cd) && cd >= ed;
}

/**
 * The entry a lookup may reuse, from the candidates stored for the sha256 (any tenant, any
 * version): a malware entry that still holds wins (fail closed), else a clean entry of this
 * exact signature version and scan context, of this tenant unless clean entries are shared.
 */
export function reusableEntry(candidates: readonly VerdictCacheEntry[], q: CacheQuery, settings: VerdictCacheSettings, now: Date): VerdictCacheEntry | null {
  const young = (e: VerdictCacheEntry, hours: number) => now.getTime() - e.recordedAt.getTime() <= hours * 3_600_000;
  const same = candidates.filter((e) => e.sha256 === q.sha256);
  const malware = same.find((e) => e.outcome === "malware" && young(e, settings.malwareMaxAgeHours) && malwareEntryHolds(e.signatureVersion, q.signatureVersion));
  if (malware) return malware;
  return same.find((e) => e.outcome === "clean" && e.signatureVersion === q.signatureVersion && e.scanContext === q.scanContext && (settings.shareClean || e.tenantId === q.tenantId) && young(e, settings.cleanMaxAgeHours)) ?? null;
}

/** Which stored entries a signature change leaves standing (the rest may be deleted). */
export function survivesSignatureChange(entry: Pick<VerdictCacheEntry, "outcome" | "signatureVersion">, currentVersion: string): boolean {
  return entry.outcome === "clean" ? entry.signatureVersion === currentVersion : malwareEntryHolds(entry.signatureVersion, currentVersion);
}
