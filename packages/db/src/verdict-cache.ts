import type { Knex } from "knex";
import { entryFor, survivesSignatureChange, type Upload, type UploadStatus, type VerdictCacheEntry } from "@intake/domain";
import { Statement, type Atomic } from "./connection.ts";

/**
 * The verdict cache's table (@intake/domain verdict-cache.ts has the rules). A table rather
 * than Redis: an entry is written in the unit of the verdict it repeats (so it exists
 * exactly when that verdict committed), survives a Redis loss or flush (Redis is only the
 * queues' here, and must not evict: maxmemory-policy noeviction), and is pruned by the
 * reaper by age and by the signature watch on a version change, which bounds its size to
 * about the distinct contents of one signature version.
 */
const INSERT = new Statement(
  `insert into verdict_cache (sha256, outcome, tenant_id, signature_version, scan_context, signature, source_upload_id, recorded_at) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing`,
  [],
);

/**
 * Records what the upload's final transition teaches the cache, if anything (entryFor), in
 * that transition's unit. Two uploads of the same bytes deciding at once write one entry
 * (the first; the key is the primary key, and a conflict changes nothing).
 */
export async function recordVerdictCacheEntry(tx: Atomic, upload: Upload, now: Date, from: UploadStatus = "deciding"): Promise<void> {
  const e = entryFor(upload, from, now);
  if (!e) return;
  await tx.run(new Statement(INSERT.sql, [e.sha256, e.outcome, e.tenantId, e.signatureVersion, e.scanContext, e.signature, e.sourceUploadId, e.recordedAt.getTime()]));
}

export class VerdictCacheRepository {
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  /** Every entry stored for these bytes (all tenants, versions and contexts: the domain picks). */
  async candidates(sha256: string): Promise<VerdictCacheEntry[]> {
    const rows = await this.db("verdict_cache").where({ sha256 }).limit(200);
    return rows.map(toEntry);
  }

  /**
   * After a signature change: deletes the entries the new version leaves without standing
   * (every clean entry of another version; malware entries whose rules, engine or database
   * went elsewhere). Lookups never reuse them anyway; this keeps the table small.
   */
  async forgetAfterSignatureChange(currentVersion: string): Promise<{ clean: number; malware: number }> {
    const clean = await this.db("verdict_cache").where({ outcome: "clean" }).whereNot({ signature_version: currentVersion }).delete();
    let malware = 0;
    const versions = await this.db("verdict_cache").where({ outcome: "malware" }).distinct("signature_version");
    for (const { signature_version: version } of versions as { signature_version: string }[]) {
      if (!survivesSignatureChange({ outcome: "malware", signatureVersion: version }, currentVersion)) malware += await this.db("verdict_cache").where({ outcome: "malware", signature_version: version }).delete();
    }
    return { clean, malware };
  }

  /** The reaper's prune: entries past their maximum age. */
  async pruneOlderThan(now: Date, maxAgeHours: { clean: number; malware: number }): Promise<number> {
    const cut = (h: number) => now.getTime() - h * 3_600_000;
    const clean = await this.db("verdict_cache").where({ outcome: "clean" }).andWhere("recorded_at", "<", cut(maxAgeHours.clean)).delete();
    const malware = await this.db("verdict_cache").where({ outcome: "malware" }).andWhere("recorded_at", "<", cut(maxAgeHours.malware)).delete();
    return clean + malware;
  }

  /**
   * An operator's flush (npm run verdict-cache -- flush): every entry, or one outcome's, or
   * one sha256's (a false positive cleared). How many it deleted.
   */
  async flush(filter: { outcome?: "clean" | "malware"; sha256?: string } = {}): Promise<number> {
    const q = this.db("verdict_cache");
    if (filter.outcome) q.where({ outcome: filter.outcome });
    if (filter.sha256) q.where({ sha256: filter.sha256 });
    return q.delete();
  }

  /** Entries by outcome (the CLI's status). */
  async counts(): Promise<{ clean: number; malware: number }> {
    const rows = (await this.db("verdict_cache").select("outcome").count({ n: "*" }).groupBy("outcome")) as { outcome: string; n: number | string }[];
    const of = (o: string) => Number(rows.find((r) => r.outcome === o)?.n ?? 0);
    return { clean: of("clean"), malware: of("malware") };
  }
}

function toEntry(r: Record<string, any>): VerdictCacheEntry {
  return {
    sha256: r.sha256,
    outcome: r.outcome,
    tenantId: r.tenant_id,
    signatureVersion: r.signature_version,
    scanContext: r.scan_context,
    signature: r.signature ?? null,
    sourceUploadId: r.source_upload_id,
    recordedAt: new Date(Number(r.recorded_at)),
  };
}
