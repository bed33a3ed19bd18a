import { createHash } from "node:crypto";
import { reusableEntry, scanContextText, type Upload, type Verdict, type VerdictCacheEntry, type VerdictCacheSettings } from "@intake/domain";
import type { ObjectHead, StoreCapabilities } from "@intake/storage";
import type { ClamdLimits } from "./content-checks.ts";
import type { ScanOutcome } from "./decisions.ts";

/**
 * The scan stage's side of the verdict cache (rules: @intake/domain verdict-cache.ts; table:
 * @intake/db verdict-cache.ts). Before clamd is asked about bytes the stage holds, their
 * sha256 (computed here, over those bytes) is looked up: a malware entry that still holds
 * quarantines them at once under the same signature name, a clean entry of this signature
 * version and scan context stands in for clamd's OK. Only clamd is skipped: the size, type
 * and content checks run as for any upload, and a clean result still goes through
 * decideVerdict, so stale or test-only signatures hold it as they hold a scanned one.
 */
export interface VerdictCacheStore {
  candidates(sha256: string): Promise<VerdictCacheEntry[]>;
}

export interface VerdictCache {
  store: VerdictCacheStore;
  settings: VerdictCacheSettings;
  /** The deployment's rules, for uploads recorded before tenant policies (their scan context). */
  deploymentRules: { allowedTypes: readonly string[]; maxSize: number };
  /** clamd's StreamMaxLength as the scanner mirrors it (CLAMD_STREAM_MAX_BYTES): it changes clamd's answer too. */
  maxStreamBytes: number;
  now?: () => Date;
}

/** The digest of what the verdict depends on besides bytes and signatures. */
export function scanContextOf(cache: Pick<VerdictCache, "deploymentRules" | "maxStreamBytes">, upload: Pick<Upload, "policy">, limits: ClamdLimits): string {
  const text = scanContextText(upload.policy, cache.deploymentRules, { ...limits, maxStreamBytes: cache.maxStreamBytes });
  return createHash("sha256").update(text).digest("hex");
}

export type CacheLookup = "hit_clean" | "hit_malware" | "miss";

/** The reusable entry for these bytes, or null. A failing lookup is a miss: clamd scans (never a pass). */
export async function lookUp(cache: VerdictCache, q: { sha256: string; tenantId: string; signatureVersion: string; scanContext: string }, onError: (err: unknown) => void): Promise<VerdictCacheEntry | null> {
  try {
    return reusableEntry(await cache.store.candidates(q.sha256), q, cache.settings, (cache.now ?? (() => new Date()))());
  } catch (err) {
    onError(err);
    return null;
  }
}

export function lookupResult(entry: VerdictCacheEntry | null): CacheLookup {
  return entry === null ? "miss" : entry.outcome === "malware" ? "hit_malware" : "hit_clean";
}

/**
 * The scanner report an entry stands for, about `bytes` bytes with this sha256 (the caller's
 * own count and hash): what scanVerdict reads, so a hit is judged as clamd's answer would be.
 */
export function reportFromEntry(entry: VerdictCacheEntry, bytes: number, sha256: string): ScanOutcome & { bytes: number; sha256: string } {
  return entry.outcome === "malware" ? { outcome: "infected", signature: entry.signature ?? "unknown", bytes, sha256 } : { outcome: "clean", bytes, sha256 };
}

/** A malware finding the cache repeated, saying so (the source upload is named on the row, not here: it may be another tenant's). */
export function reusedMalware(found: Verdict): Verdict {
  return found.outcome === "clean" || found.reason !== "malware" ? found : { ...found, detail: `${found.detail} (verdict reused: clamd found it in these exact bytes before, with signatures that still hold)` };
}

/**
 * The sha256 storage itself vouches for, for the version the pipeline checked: only from a
 * store whose capabilities say it verifies x-amz-checksum-sha256 (AWS S3; not Ceph RGW 16,
 * which ignores it, nor the local stand-in, which verifies nothing and may echo any header),
 * only a whole-object checksum (a multipart upload's is COMPOSITE: no sha256 of the object),
 * and only while the object is still the checked ETag. Null: nothing is proven, the bytes
 * must be read and hashed before any entry is believed.
 */
export function storageProvenSha256(upload: Pick<Upload, "checkedETag">, head: Pick<ObjectHead, "eTag" | "verifiedSha256">, capabilities: Pick<StoreCapabilities, "verifiesSha256Checksum">): string | null {
  if (!capabilities.verifiesSha256Checksum || !head.verifiedSha256 || !upload.checkedETag || head.eTag !== upload.checkedETag) return null;
  return /^[0-9a-f]{64}$/.test(head.verifiedSha256) ? head.verifiedSha256 : null;
}
