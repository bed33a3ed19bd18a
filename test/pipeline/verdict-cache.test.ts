import { randomUUID } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyRepository, TenantPolicyRepository, VerdictCacheRepository } from "@intake/db";
import { freePort, waitFor } from "@intake/testkit";
import { deploymentTerms } from "../../services/api/src/policies/tenant-policies.ts";
import { storageProvenSha256 } from "@intake/pipeline";
import { CEPH_RGW_CAPABILITIES, LOCAL_STAND_IN_CAPABILITIES, S3ObjectStore, type ObjectStore, type StoreCapabilities } from "@intake/storage";
import { eicar } from "./fixtures.ts";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";
import { startClamdTap, type ClamdTap } from "./support/clamd-tap.ts";
import { startSmallClamd, type SmallClamd } from "../support/small-clamd.ts";

/**
 * Issue 12 §4 through the whole stack: a real clamd behind a tap that records what each
 * connection sent it, so "clamd was not asked" is observed on the wire, not mocked. The
 * second upload of the same bytes skips clamd (clean) or is quarantined at once (malware);
 * a signature change, another policy, a client's declared sha256 over other bytes and
 * another tenant (clean entries are per tenant) all scan again.
 */
const VERDICT_CACHE_CLI = fileURLToPath(new URL("../../services/worker/src/verdict-cache-cli.ts", import.meta.url));
const CLI = fileURLToPath(new URL("../../services/worker/src/signatures-cli.ts", import.meta.url));

/** A text file that starts with a marker unique to the test (what the tap looks for). */
function notes(marker: string, kib = 96): Buffer {
  const line = "The quarterly figures are in the usual place; nothing to see here.\n";
  return Buffer.from(`${marker}\n${line.repeat(Math.ceil((kib * 1024) / line.length))}`);
}

async function uploadAs(s: PipelineStack, apiKey: string, bytes: Buffer, o: { contentType: string; sha256?: string }): Promise<string> {
  const res = await fetch(`${s.apiUrl}/v1/uploads`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ filename: "file.txt", contentType: o.contentType, size: bytes.length, ...(o.sha256 ? { sha256: o.sha256 } : {}) }),
  });
  const created = (await res.json()) as { upload: { id: string }; url: string; headers: Record<string, string> };
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(created)}`);
  const put = await fetch(created.url, { method: "PUT", headers: created.headers, body: bytes });
  if (put.status !== 200) throw new Error(`PUT failed: ${put.status}`);
  return created.upload.id;
}

const final = ["verified", "quarantined", "held"] as const;

describe("verdict cache on the shared clamd (through a tap)", () => {
  let tap: ClamdTap;
  let s: PipelineStack;
  let otherKey: string;
  let metricsUrl: string;
  beforeAll(async () => {
    tap = await startClamdTap({ host: "127.0.0.1", port: 3310 });
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: null, env: { CLAMD_PORT: String(tap.port), VERDICT_CACHE: "true", WORKER_METRICS_PORT: String(await freePort()) } });
    metricsUrl = (await s.startWorker()).metricsUrl!;
    otherKey = (await new ApiKeyRepository(s.database.db).create("globex", "verdict-cache-test")).key;
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    await tap?.close();
  });

  it("a second upload of the same clean bytes is verified without clamd seeing them, and says whose verdict it reused", async () => {
    const marker = `CLEAN-${randomUUID()}`;
    const bytes = notes(marker);
    const first = await s.waitFor((await s.upload(bytes, { contentType: "text/plain" })).id, [...final]);
    expect(first).toMatchObject({ status: "verified", verdictFromCache: null });
    expect(first.scanContext).toMatch(/^[0-9a-f]{64}$/);
    expect(tap.scansOf(marker)).toBe(1);

    const second = await s.waitFor((await s.upload(bytes, { contentType: "text/plain" })).id, [...final]);
    expect(second).toMatchObject({ status: "verified", verdictFromCache: first.id, sha256: sha256Of(bytes), scannerVersion: first.scannerVersion, scanContext: first.scanContext });
    expect(tap.scansOf(marker)).toBe(1);
    // The hit's download is the uploaded bytes, as for a scanned upload.
    expect((await s.download(second.id)).bytes.equals(bytes)).toBe(true);
  });

  it("the same EICAR twice: the second is quarantined at once under the same signature, marked as a hit", async () => {
    const first = await s.waitFor((await s.upload(eicar(), { contentType: "text/plain" })).id, [...final]);
    expect(first).toMatchObject({ status: "quarantined", reason: "malware" });
    const scans = tap.scansOf(eicar());
    const second = await s.waitFor((await s.upload(eicar(), { contentType: "text/plain" })).id, [...final]);
    expect(second).toMatchObject({ status: "quarantined", reason: "malware", signature: first.signature, verdictFromCache: first.id });
    expect(second.reasonDetail).toContain("verdict reused");
    expect(tap.scansOf(eicar())).toBe(scans);
  });

  it("a client's declared sha256 of known-clean bytes over other bytes is no hit: the pipeline hashes what it read (checksum_mismatch), and clamd scans it", async () => {
    const marker = `KNOWN-${randomUUID()}`;
    const known = notes(marker);
    await s.waitFor((await s.upload(known, { contentType: "text/plain" })).id, [...final]);
    const otherMarker = `OTHER-${randomUUID()}`;
    const other = notes(otherMarker);
    // fauxqs checks no checksum, so the other bytes are stored under the known file's claim.
    const u = await s.waitFor((await s.upload(other, { contentType: "text/plain", sha256: sha256Of(known) })).id, [...final]);
    expect(u).toMatchObject({ status: "quarantined", reason: "checksum_mismatch", verdictFromCache: null, sha256: sha256Of(other) });
    expect(tap.scansOf(otherMarker)).toBe(1);
  });

  it("clean entries serve their own tenant only: another tenant's identical bytes are scanned; a malware entry serves every tenant", async () => {
    const marker = `TENANT-${randomUUID()}`;
    const bytes = notes(marker);
    const mine = await s.waitFor((await s.upload(bytes, { contentType: "text/plain" })).id, [...final]);
    expect(mine.status).toBe("verified");
    const theirs = await s.waitFor(await uploadAs(s, otherKey, bytes, { contentType: "text/plain" }), [...final]);
    expect(theirs).toMatchObject({ status: "verified", tenantId: "globex", verdictFromCache: null });
    expect(tap.scansOf(marker)).toBe(2);

    const bad = await s.waitFor((await s.upload(eicar(), { contentType: "text/plain" })).id, [...final]);
    const scans = tap.scansOf(eicar());
    const theirsBad = await s.waitFor(await uploadAs(s, otherKey, eicar(), { contentType: "text/plain" }), [...final]);
    expect(theirsBad).toMatchObject({ status: "quarantined", reason: "malware", signature: bad.signature });
    expect(theirsBad.verdictFromCache).not.toBeNull();
    expect(tap.scansOf(eicar())).toBe(scans);
  });

  it("a different recorded policy (its checked terms' digest) does not reuse the entry", async () => {
    const marker = `POLICY-${randomUUID()}`;
    const bytes = notes(marker);
    const before = await s.waitFor(await uploadAs(s, otherKey, bytes, { contentType: "text/plain" }), [...final]);
    expect(before.status).toBe("verified");
    // globex's own policy: a smaller maximum size, a term its checks read.
    await new TenantPolicyRepository(s.database.db).change("globex", { maxSize: 50 * 1024 * 1024 }, { actorId: "test", deployment: deploymentTerms(s.config) });
    const after = await waitFor(
      async () => {
        const u = await s.waitFor(await uploadAs(s, otherKey, bytes, { contentType: "text/plain" }), [...final]);
        return u.policy?.checksDigest !== before.policy?.checksDigest ? u : null;
      },
      { timeoutMs: 15_000, intervalMs: 500, message: "an upload recorded under globex's new policy" },
    );
    expect(after).toMatchObject({ status: "verified", verdictFromCache: null });
    expect(after.scanContext).not.toBe(before.scanContext);
  });

  it("two uploads of the same new bytes at once: both scanned (neither waits on the other's verdict), one entry", async () => {
    const marker = `RACE-${randomUUID()}`;
    const bytes = notes(marker);
    const ids = await Promise.all([s.upload(bytes, { contentType: "text/plain" }), s.upload(bytes, { contentType: "text/plain" })]);
    const done = await Promise.all(ids.map((u) => s.waitFor(u.id, [...final])));
    for (const u of done) expect(u.status).toBe("verified");
    const rows = await s.database.db("verdict_cache").where({ sha256: sha256Of(bytes) });
    expect(rows).toHaveLength(1);
    // The entry names an upload clamd scanned; if one of the two was a hit, it names the other.
    const scanned = done.filter((u) => u.verdictFromCache === null).map((u) => u.id);
    expect(scanned).toContain(rows[0].source_upload_id);
    expect(tap.scansOf(marker)).toBe(scanned.length);
  });

  it("entries are written only once the verdict is final, and the lookups are counted by outcome", async () => {
    const text = await (await fetch(metricsUrl)).text();
    const count = (outcome: string) => Number(new RegExp(`^intake_verdict_cache_lookups_total\\{outcome="${outcome}"\\} (\\d+)`, "m").exec(text)?.[1]);
    expect(count("hit_clean")).toBeGreaterThanOrEqual(1);
    expect(count("hit_malware")).toBeGreaterThanOrEqual(2);
    expect(count("miss")).toBeGreaterThanOrEqual(5);
    const entries = new VerdictCacheRepository(s.database.db);
    const counts = await entries.counts();
    expect(counts.clean).toBeGreaterThan(0);
    expect(counts.malware).toBe(1); // EICAR once: hits record nothing
    const rows = await s.database.db("verdict_cache").select("source_upload_id");
    const sources = await s.database.db("uploads").whereIn("id", rows.map((r: { source_upload_id: string }) => r.source_upload_id)).select("status", "verdict_from_cache");
    for (const u of sources) expect(u).toMatchObject({ verdict_from_cache: null });
    expect(sources.every((u: { status: string }) => u.status === "verified" || u.status === "quarantined")).toBe(true);
  });

  it("a held verdict is never satisfied from the cache: a clean entry made under test signatures holds the upload where they are not accepted", async () => {
    const marker = `HELD-${randomUUID()}`;
    const bytes = notes(marker);
    const first = await s.waitFor((await s.upload(bytes, { contentType: "text/plain" })).id, [...final]);
    expect(first.status).toBe("verified");
    await s.stopWorkers();
    // The shared clamd runs the generated test database: a worker that does not accept it holds every clean result.
    await s.startWorker("inspect,scan,finalize", {}, { ACCEPT_TEST_SIGNATURES: "false" });
    const held = await s.waitFor((await s.upload(bytes, { contentType: "text/plain", complete: true })).id, [...final]);
    expect(held).toMatchObject({ status: "held", verdict: null, finalKey: null });
    expect(tap.scansOf(marker)).toBe(1); // the entry was found, and still nothing was issued
    // A malware entry is still issued there (quarantine findings are never held).
    const bad = await s.waitFor((await s.upload(eicar(), { contentType: "text/plain", complete: true })).id, [...final]);
    expect(bad).toMatchObject({ status: "quarantined", reason: "malware" });
  });

  it("npm run verdict-cache -- status | flush: counts the entries and deletes them by outcome", () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, [VERDICT_CACHE_CLI, ...args], { env: { ...process.env, ...s.env, LOG_LEVEL: "silent" }, encoding: "utf8", timeout: 60_000 });
    const status = cli("status");
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^verdict cache: [1-9]\d* clean, 1 malware entries\n$/);
    expect(cli("flush", "--clean", "--malware").status).toBe(64);
    expect(cli("flush", "--sha256", "nothex").status).toBe(64);
    const flushed = cli("flush", "--clean");
    expect(flushed.status, flushed.stderr).toBe(0);
    expect(cli("status").stdout).toBe("verdict cache: 0 clean, 1 malware entries\n");
    expect(cli("flush").stdout).toBe("verdict cache: 1 entries deleted\n");
  });
});

describe("verdict cache across a signature change (a clamd of its own)", () => {
  let clamd: SmallClamd;
  let tap: ClamdTap;
  let s: PipelineStack;
  beforeAll(async () => {
    clamd = await startSmallClamd({ maxFileSize: 10 * 1024 * 1024 });
    mkdirSync(join(clamd.dataDir, "rules"));
    tap = await startClamdTap({ host: "127.0.0.1", port: clamd.port });
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", env: { ...clamd.env, CLAMD_PORT: String(tap.port), VERDICT_CACHE: "true", SIGNATURE_CHECK_SECONDS: "1", WORKER_METRICS_PORT: "0" } });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    await tap?.close();
    clamd?.close();
  });

  it("after a signature change (a new rule set) the clean entry is not reused and is dropped; the malware entry goes too (rules changed)", async () => {
    const marker = `SIGCHANGE-${randomUUID()}`;
    const bytes = notes(marker);
    const first = await s.waitFor((await s.upload(bytes, { contentType: "text/plain" })).id, [...final]);
    const hit = await s.waitFor((await s.upload(bytes, { contentType: "text/plain" })).id, [...final]);
    expect(hit).toMatchObject({ status: "verified", verdictFromCache: first.id });
    await s.waitFor((await s.upload(eicar(), { contentType: "text/plain" })).id, [...final]);
    expect(tap.scansOf(marker)).toBe(1);

    writeFileSync(join(clamd.dataDir, "rules", "acme.yar"), 'rule Acme_Cache_Test\n{\n  strings:\n    $a = "INTAKE-VERDICT-CACHE-RULE-5521"\n  condition:\n    $a\n}\n');
    const reload = spawnSync(process.execPath, [CLI, "reload"], { env: { ...process.env, ...clamd.env, DATA_DIR: clamd.dataDir, CLAMD_PORT: String(clamd.port), CLAMD_CUSTOM_RULES_DIR: join(clamd.dataDir, "rules"), LOG_LEVEL: "silent" }, encoding: "utf8", timeout: 120_000 });
    expect(reload.status, `${reload.stdout}${reload.stderr}`).toBe(0);
    await waitFor(async () => (s.workerLogs.some((l) => l.includes("verdict cache: entries the new signatures do not back were dropped")) ? true : null), { timeoutMs: 15_000, intervalMs: 100, message: "the worker to see the new rule set and drop entries" });
    expect(await new VerdictCacheRepository(s.database.db).counts()).toEqual({ clean: 0, malware: 0 });

    const after = await s.waitFor((await s.upload(bytes, { contentType: "text/plain" })).id, [...final]);
    expect(after).toMatchObject({ status: "verified", verdictFromCache: null });
    expect(after.scannerVersion).not.toBe(first.scannerVersion);
    // clamd was asked again (more than once when a scan met clamd still reloading and was retried).
    expect(tap.scansOf(marker)).toBeGreaterThanOrEqual(2);
    const eicarScans = tap.scansOf(eicar());
    const bad = await s.waitFor((await s.upload(eicar(), { contentType: "text/plain" })).id, [...final]);
    expect(bad).toMatchObject({ status: "quarantined", reason: "malware", verdictFromCache: null });
    expect(tap.scansOf(eicar())).toBeGreaterThan(eicarScans);
  }, 120_000);
});

/**
 * The staged path (uploads above ONE_PASS_MAX_BYTES): the lookup happens before the read, by
 * the sha256 storage proved or the client declared. A declared one is only a hint: the bytes
 * are hashed on the read, and a hint they do not bear out is scanned by clamd after all.
 * Only a store whose capabilities say it verifies x-amz-checksum-sha256 lets a malware entry
 * skip the read; the local stand-in (and RGW, which ignores the header) never do.
 */
describe("verdict cache on the staged path (declared sha256 as a hint; storage-proven sha256)", () => {
  let tap: ClamdTap;
  let s: PipelineStack;
  const reads: string[] = [];
  /** The stack's own store, counting reads, with capabilities as given. */
  const counting = (store: ObjectStore, capabilities: StoreCapabilities): ObjectStore =>
    new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === "capabilities") return capabilities;
        if (prop === "read") return (key: string, o?: unknown) => (reads.push(key), target.read(key, o as never));
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  beforeAll(async () => {
    tap = await startClamdTap({ host: "127.0.0.1", port: 3310 });
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: null, env: { CLAMD_PORT: String(tap.port), VERDICT_CACHE: "true", ONE_PASS_MAX_BYTES: "32768", WORKER_METRICS_PORT: "0" } });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    await tap?.close();
  });

  it("a declared sha256 finds the clean entry before the read; the bytes read confirm it and clamd is not asked; the same claim over other bytes is scanned", async () => {
    await s.startWorker(undefined, { store: counting(s.storage.store, s.storage.store.capabilities) });
    try {
      const marker = `STAGED-${randomUUID()}`;
      const bytes = notes(marker);
      const first = await s.waitFor((await s.upload(bytes, { contentType: "text/plain", sha256: sha256Of(bytes) })).id, [...final]);
      expect(first).toMatchObject({ status: "verified", verdictFromCache: null, scannedAt: expect.any(Date) });
      const second = await s.waitFor((await s.upload(bytes, { contentType: "text/plain", sha256: sha256Of(bytes) })).id, [...final]);
      expect(second).toMatchObject({ status: "verified", verdictFromCache: first.id });
      expect(tap.scansOf(marker)).toBe(1);

      const otherMarker = `STAGED-OTHER-${randomUUID()}`;
      const other = notes(otherMarker);
      const lie = await s.waitFor((await s.upload(other, { contentType: "text/plain", sha256: sha256Of(bytes) })).id, [...final]);
      expect(lie).toMatchObject({ status: "quarantined", reason: "checksum_mismatch", verdictFromCache: null, sha256: sha256Of(other) });
      expect(tap.scansOf(otherMarker)).toBe(1);
    } finally {
      await s.stopWorkers();
    }
  });

  it("the local stand-in's capabilities (and RGW's) never skip the read: a known-malware claim is read and hashed, and other bytes under it are scanned", async () => {
    await s.startWorker(undefined, { store: counting(s.storage.store, LOCAL_STAND_IN_CAPABILITIES) });
    try {
      const bad = Buffer.concat([eicar(), Buffer.alloc(0)]);
      // A malware entry for EICAR (one pass: 68 bytes), then a staged upload claiming EICAR's sha256.
      await s.waitFor((await s.upload(bad, { contentType: "text/plain", complete: true })).id, [...final]);
      const marker = `CLAIMS-EICAR-${randomUUID()}`;
      const harmless = notes(marker);
      const id = (await s.upload(harmless, { contentType: "text/plain", sha256: sha256Of(bad), complete: true })).id;
      const u = await s.waitFor(id, [...final]);
      expect(u).toMatchObject({ status: "quarantined", reason: "checksum_mismatch", verdictFromCache: null });
      expect(reads.filter((k) => k === u.objectKey).length).toBeGreaterThanOrEqual(2); // inspect's head, the scan's read
      expect(tap.scansOf(marker)).toBe(1);
      for (const caps of [LOCAL_STAND_IN_CAPABILITIES, CEPH_RGW_CAPABILITIES]) expect(storageProvenSha256({ checkedETag: "e" }, { eTag: "e", verifiedSha256: sha256Of(bad) }, caps)).toBeNull();
    } finally {
      await s.stopWorkers();
    }
  });

  it("a store that verifies x-amz-checksum-sha256 (the adapter's capability flag) proves a known-malware upload's bytes: quarantined without reading them", async () => {
    // A stopped worker's ingest took the stand-in's event source with it: complete calls hand these uploads over.
    // The fauxqs adapter told it verifies the checksum: its HeadObject then asks for the stored checksum.
    const claiming = new S3ObjectStore(s.storage.s3, s.storage.bucket, { ...LOCAL_STAND_IN_CAPABILITIES, verifiesSha256Checksum: true });
    await s.startWorker(undefined, { store: counting(claiming, claiming.capabilities) });
    try {
      const bad = Buffer.concat([eicar(), Buffer.alloc(40 * 1024, 0x20)]);
      const scans = tap.scansOf(eicar());
      // first: scanned by clamd (staged: above ONE_PASS_MAX_BYTES), which records the malware entry
      const first = await s.waitFor((await s.upload(bad, { contentType: "text/plain", sha256: sha256Of(bad), complete: true })).id, [...final]);
      expect(first).toMatchObject({ status: "quarantined", reason: "malware" });
      expect(tap.scansOf(eicar())).toBe(scans + 1);
      const second = await s.waitFor((await s.upload(bad, { contentType: "text/plain", sha256: sha256Of(bad), complete: true })).id, [...final]);
      expect(second).toMatchObject({ status: "quarantined", reason: "malware", signature: first.signature, verdictFromCache: first.id, sha256: sha256Of(bad), finalKey: expect.stringMatching(/^quarantine\//) });
      expect(tap.scansOf(eicar())).toBe(scans + 1);
      // inspect's ranged read only: the scan read none of the bytes
      expect(reads.filter((k) => k === second.objectKey).length).toBe(1);
      expect(reads.filter((k) => k === first.objectKey).length).toBe(2);
    } finally {
      await s.stopWorkers();
    }
  });
});

describe("verdict cache on Ceph RGW and PostgreSQL", () => {
  let tap: ClamdTap;
  let s: PipelineStack;
  beforeAll(async () => {
    tap = await startClamdTap({ host: "127.0.0.1", port: 3310 });
    s = await startPipelineStack({ storage: "rgw", database: "pg", env: { CLAMD_PORT: String(tap.port), VERDICT_CACHE: "true", ONE_PASS_MAX_BYTES: "32768", WORKER_METRICS_PORT: "0" } });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    await tap?.close();
  });

  it("one pass and staged: the same clean bytes twice, the second from the cache; EICAR twice, the second a hit; RGW's capabilities never skip the read", async () => {
    const small = Buffer.from(`PG-SMALL-${randomUUID()}\nshort notes\n`);
    const a = await s.waitFor((await s.upload(small, { contentType: "text/plain", complete: true })).id, [...final]);
    const b = await s.waitFor((await s.upload(small, { contentType: "text/plain", complete: true })).id, [...final]);
    expect(b).toMatchObject({ status: "verified", verdictFromCache: a.id });

    const marker = `PG-STAGED-${randomUUID()}`;
    const big = notes(marker);
    const c = await s.waitFor((await s.upload(big, { contentType: "text/plain", sha256: sha256Of(big), complete: true })).id, [...final]);
    const d = await s.waitFor((await s.upload(big, { contentType: "text/plain", sha256: sha256Of(big), complete: true })).id, [...final]);
    expect(c).toMatchObject({ status: "verified", verdictFromCache: null });
    expect(d).toMatchObject({ status: "verified", verdictFromCache: c.id });
    expect(tap.scansOf(marker)).toBe(1);

    const e1 = await s.waitFor((await s.upload(eicar(), { contentType: "text/plain", complete: true })).id, [...final]);
    const e2 = await s.waitFor((await s.upload(eicar(), { contentType: "text/plain", complete: true })).id, [...final]);
    expect(e2).toMatchObject({ status: "quarantined", reason: "malware", signature: e1.signature, verdictFromCache: e1.id });
    expect(await new VerdictCacheRepository(s.database.db).counts()).toEqual({ clean: 2, malware: 1 });
    expect(s.storage.store.capabilities.verifiesSha256Checksum).toBe(false);
  });
});
