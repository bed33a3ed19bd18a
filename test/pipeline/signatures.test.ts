import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { Reaper } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { createClamdScanner } from "@intake/scanner";
import { waitFor } from "@intake/testkit";
import { eicar, png } from "./fixtures.ts";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";
import { startSmallClamd, type SmallClamd } from "../support/small-clamd.ts";

/**
 * Issue 12 §3 and §5 through the whole stack, each against a clamd of its own (started by
 * infra/clamd/up.sh with its own DATA_DIR and port): these tests RELOAD it and age its
 * database, which the shared clamd on 3310 must never see.
 *
 * - Custom rules: a YARA rule and a SHA-256 hash-list entry dropped into the rules
 *   directory and loaded by `npm run signatures -- reload` quarantine a matching upload under
 *   the rule's name; a malformed rule file is refused and nothing changes.
 * - Held verdicts: with a database older than SIGNATURE_MAX_AGE_HOURS a clean upload is
 *   held (nothing promoted), a finding is still issued, and once a fresh database is
 *   loaded (RELOAD) held uploads are checked again by themselves: clean ones are verified,
 *   one that a new rule now matches is quarantined.
 */
const CLI = fileURLToPath(new URL("../../services/worker/src/signatures-cli.ts", import.meta.url));
const YARA_TEXT = "INTAKE-CUSTOM-YARA-PAYLOAD-7391";

const yaraRule = (name: string, text: string) => `rule ${name}\n{\n  strings:\n    $a = "${text}"\n  condition:\n    $a\n}\n`;
/** A text upload that carries `marker` (harmless ASCII: what the operator's rule looks for). */
const textWith = (marker: string) => Buffer.from(`Quarterly notes.\n${marker}\nEnd of notes.\n`);

function signatures(clamd: SmallClamd, rulesDir: string, command: string) {
  const r = spawnSync(process.execPath, [CLI, command], {
    env: { ...process.env, ...clamd.env, DATA_DIR: clamd.dataDir, CLAMD_PORT: String(clamd.port), CLAMD_CUSTOM_RULES_DIR: rulesDir, LOG_LEVEL: "silent" },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function databaseFiles(clamd: SmallClamd): string[] {
  return readdirSync(join(clamd.dataDir, "clamd", "db")).sort();
}

describe("custom rules: operators' YARA rules and hash lists", () => {
  let clamd: SmallClamd;
  let s: PipelineStack;
  let rulesDir: string;
  beforeAll(async () => {
    clamd = await startSmallClamd({ maxFileSize: 10 * 1024 * 1024 });
    rulesDir = join(clamd.dataDir, "rules");
    mkdirSync(rulesDir);
    // The workers read clamd's signatures every second (default 60 s), so a verdict right after a reload names the new rule set.
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", env: { ...clamd.env, CLAMD_PORT: String(clamd.port), SIGNATURE_CHECK_SECONDS: "1", WORKER_METRICS_PORT: "0" } });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    clamd?.close();
  });

  it("a YARA rule dropped in and reloaded quarantines a matching upload under the rule's name; other uploads are verified", async () => {
    writeFileSync(join(rulesDir, "acme-notes.yar"), yaraRule("Acme_Leaked_Notes", YARA_TEXT));
    const reload = signatures(clamd, rulesDir, "reload");
    expect(reload, reload.out).toMatchObject({ code: 0 });
    expect(reload.out).toMatch(/rules: acme-notes\.yar/);
    // The workers see the new rule set at their next reading (SIGNATURE_CHECK_SECONDS).
    const digest = /\(set ([0-9a-f]{16})\)/.exec(reload.out)?.[1];
    await waitFor(async () => (s.workerLogs.some((l) => l.includes("clamd's signatures changed") && l.includes(`rules:${digest}`)) ? true : null), { timeoutMs: 10_000, intervalMs: 100, message: `a worker to see rule set ${digest}` });

    const hit = await s.upload(textWith(YARA_TEXT), { contentType: "text/plain" });
    const miss = await s.upload(textWith("nothing to see"), { contentType: "text/plain" });
    const caught = await s.waitFor(hit.id, ["verified", "quarantined"]);
    // clamd names a YARA match YARA.<rule>.UNOFFICIAL (a database not signed by Talos).
    expect(caught).toMatchObject({ status: "quarantined", reason: "malware", signature: "YARA.Acme_Leaked_Notes.UNOFFICIAL", finalKey: objectKey("quarantine", s.tenant, hit.id) });
    expect(caught.reasonDetail).toBe("clamd found YARA.Acme_Leaked_Notes.UNOFFICIAL");
    expect(await s.waitFor(miss.id, ["verified", "quarantined"])).toMatchObject({ status: "verified", signature: null });
    // The verdict records which rule set made it.
    expect(caught.scannerVersion).toMatch(new RegExp(`^ClamAV [0-9.]+/none/none/rules:${digest}$`));
  });

  it("a SHA-256 hash-list entry (.hsb) quarantines exactly the upload with those bytes", async () => {
    const target = png(12, 12, 7);
    const sibling = png(12, 12, 8);
    writeFileSync(join(rulesDir, "acme-hashes.hsb"), `${sha256Of(target)}:${target.length}:Acme.Banned.Logo\n`);
    expect(signatures(clamd, rulesDir, "reload")).toMatchObject({ code: 0 });

    const hit = await s.upload(target, { contentType: "image/png" });
    const miss = await s.upload(sibling, { contentType: "image/png" });
    expect(await s.waitFor(hit.id, ["verified", "quarantined"])).toMatchObject({ status: "quarantined", reason: "malware", signature: "Acme.Banned.Logo.UNOFFICIAL" });
    expect(await s.waitFor(miss.id, ["verified", "quarantined"])).toMatchObject({ status: "verified" });
  });

  it.each([
    ["a hash list with a malformed line", "broken.hsb", "not-a-hash:zz:Broken.Entry\n", /Malformed database/],
    ["a body signature that is not hex", "broken.ndb", "Broken.Body:0:*:zzzz\n", /Malformed database/],
    // clamd itself would load this file "successfully" without the rule (a warning only).
    ["a YARA rule with a syntax error", "broken.yar", 'rule Broken {\n  strings: $a = "x\n  condition: $a and\n', /failed to parse or load|unterminated string/],
    // clamd names one signature per scan: a rule that matches the probe would hide the rule set from the signature version.
    ["a YARA rule that matches the signature-set probe", "broad.yar", 'rule Too_Broad\n{\n  strings:\n    $a = "INTAKE-SIGNATURE-SET-PROBE"\n  condition:\n    $a\n}\n', /YARA\.Too_Broad\S* matches Intake's signature-set probe/],
  ])("%s is refused before clamd sees it; the rules in force and scanning stay as they were", async (_name, file, text, problem) => {
    const before = databaseFiles(clamd);
    const versionBefore = (await createClamdScanner({ port: clamd.port }).version()).raw;
    writeFileSync(join(rulesDir, file), text);
    try {
      const reload = signatures(clamd, rulesDir, "reload");
      expect(reload.code, reload.out).toBe(1);
      expect(reload.out).toContain(`REFUSED ${file}`);
      expect(reload.out).toMatch(problem);
      expect(reload.out).toMatch(/nothing changed/);
      const check = signatures(clamd, rulesDir, "check");
      expect(check.code).toBe(1);
      expect(check.out).toContain(`REFUSED ${file}`);
    } finally {
      rmSync(join(rulesDir, file));
    }
    // Nothing was copied next to clamd's databases, and clamd still catches what it caught.
    expect(databaseFiles(clamd)).toEqual(before);
    expect((await createClamdScanner({ port: clamd.port }).version()).raw).toBe(versionBefore);
    const stillCaught = await s.upload(textWith(YARA_TEXT), { contentType: "text/plain" });
    expect(await s.waitFor(stillCaught.id, ["verified", "quarantined"])).toMatchObject({ status: "quarantined", signature: "YARA.Acme_Leaked_Notes.UNOFFICIAL" });
  });

  it("a rule file removed from the directory is unloaded by the next reload", async () => {
    rmSync(join(rulesDir, "acme-hashes.hsb"));
    const reload = signatures(clamd, rulesDir, "reload");
    expect(reload, reload.out).toMatchObject({ code: 0 });
    expect(reload.out).toMatch(/removed custom-acme-hashes\.hsb/);
    const target = png(12, 12, 7);
    const again = await s.upload(target, { contentType: "image/png" });
    expect(await s.waitFor(again.id, ["verified", "quarantined"])).toMatchObject({ status: "verified" });
  });
});

describe("held verdicts: stale signatures hold clean results until fresh ones load", () => {
  let clamd: SmallClamd;
  let s: PipelineStack;
  let rulesDir: string;
  const DAY = 24 * 3600;

  /** Sets the generated database's files to `ageSeconds` old: what health.ts reads as its date. */
  function ageDatabase(ageSeconds: number) {
    const dir = join(clamd.dataDir, "clamd", "db");
    const at = Date.now() / 1000 - ageSeconds;
    for (const f of readdirSync(dir)) if (f.startsWith("intake-")) utimesSync(join(dir, f), at, at);
  }

  beforeAll(async () => {
    clamd = await startSmallClamd({ maxFileSize: 10 * 1024 * 1024 });
    rulesDir = join(clamd.dataDir, "rules");
    mkdirSync(rulesDir);
    ageDatabase(10 * DAY);
    s = await startPipelineStack({
      storage: "fauxqs",
      database: "sqlite",
      env: {
        ...clamd.env,
        CLAMD_PORT: String(clamd.port),
        // The worker reads this clamd's test database date and marker from its DATA_DIR.
        DATA_DIR: clamd.dataDir,
        HOLD_ON_STALE_SIGNATURES: "true",
        SIGNATURE_MAX_AGE_HOURS: "24",
        SIGNATURE_CHECK_SECONDS: "1",
        WORKER_METRICS_PORT: "0",
      },
    });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    clamd?.close();
  });

  it("holds a clean upload (nothing promoted, visible as held), issues a finding at once, and releases both ways after a fresh database loads", async () => {
    const cleanBytes = png(20, 20, 3);
    const clean = await s.upload(cleanBytes, { contentType: "image/png" });
    // Clean to today's (old) signatures; a rule added with the fresh database will match it.
    const laterCaught = await s.upload(textWith(YARA_TEXT), { contentType: "text/plain" });
    const infected = await s.upload(eicar(), { contentType: "text/plain" });

    const held = await s.waitFor(clean.id, ["held", "verified", "quarantined"]);
    expect(held).toMatchObject({ status: "held", verdict: null, finalKey: null, sha256: sha256Of(cleanBytes) });
    expect(held.reasonDetail).toMatch(/^held: the signature database is 2\d\d(\.\d+)? hours old \(at most 24 allowed\)/);
    expect(await s.waitFor(laterCaught.id, ["held", "verified", "quarantined"])).toMatchObject({ status: "held" });
    // A finding is never held.
    expect(await s.waitFor(infected.id, ["held", "verified", "quarantined"])).toMatchObject({ status: "quarantined", reason: "malware" });

    // Nothing promoted, nothing lost: the object waits under pending/, no download.
    expect(await s.storage.store.head(objectKey("verified", s.tenant, clean.id))).toBeNull();
    expect(await s.storage.store.head(objectKey("pending", s.tenant, clean.id))).not.toBeNull();
    expect((await s.download(clean.id)).status).not.toBe(302);
    // The API says held; /readyz flags it (with the stale database).
    const view = (await (await fetch(`${s.apiUrl}/v1/uploads/${clean.id}`, { headers: { authorization: `Bearer ${s.apiKey}` } })).json()) as { upload: { status: string } };
    expect(view.upload.status).toBe("held");
    const ready = (await (await fetch(`${s.apiUrl}/readyz`)).json()) as { pipeline: { held: { count: number }; flags: { code: string }[] } };
    expect(ready.pipeline.held.count).toBe(2);
    expect(ready.pipeline.flags.map((f) => f.code)).toEqual(expect.arrayContaining(["signatures_stale", "verdicts_held"]));

    // The reaper neither expires nor re-queues a held upload, however long it has waited.
    const reaper = new Reaper({ repository: s.uploads, audit: s.audit, store: s.storage.store, queues: s.queues, logger: createLogger({ level: "silent", name: "reaper" }), settings: { ...s.config.reaper, stuckAfterSeconds: 0 }, onePassMaxBytes: s.config.worker.onePassMaxBytes });
    const reaped = await reaper.reap(new Date(Date.now() + 30 * DAY * 1000));
    expect({ expired: reaped.expired, requeued: reaped.requeued, inProgress: reaped.inProgress }).toEqual({ expired: 0, requeued: 0, inProgress: 0 });
    expect((await s.uploads.getById(clean.id))?.status).toBe("held");

    // Fresh signatures: the database rewritten now, a new rule with it, and a RELOAD.
    ageDatabase(0);
    writeFileSync(join(rulesDir, "acme-notes.yar"), yaraRule("Acme_Leaked_Notes", YARA_TEXT));
    const reload = signatures(clamd, rulesDir, "reload");
    expect(reload, reload.out).toMatchObject({ code: 0 });

    // Both proceed by themselves, checked again with the new signatures.
    const verified = await s.waitFor(clean.id, ["verified", "quarantined"], 60_000);
    expect(verified).toMatchObject({ status: "verified", verdict: "clean", reasonDetail: null, finalKey: objectKey("verified", s.tenant, clean.id) });
    expect(verified.scannerVersion).toMatch(/\/rules:[0-9a-f]{16}$/);
    expect((await s.download(clean.id)).bytes.equals(cleanBytes)).toBe(true);
    expect(await s.waitFor(laterCaught.id, ["verified", "quarantined"], 60_000)).toMatchObject({ status: "quarantined", reason: "malware", signature: "YARA.Acme_Leaked_Notes.UNOFFICIAL" });
    expect(await s.auditActions(clean.id)).toEqual(["upload.created", "upload.uploaded", "upload.inspecting", "upload.held", "upload.inspecting", "upload.deciding", "upload.verified"]);
    // /readyz reuses a report for 2 s: the flag clears with the next one.
    const after = await waitFor(
      async () => {
        const r = (await (await fetch(`${s.apiUrl}/readyz`)).json()) as { pipeline: { held: { count: number }; flags: { code: string }[] } };
        return r.pipeline.held.count === 0 ? r : null;
      },
      { timeoutMs: 10_000, intervalMs: 250, message: "/readyz to report no held upload" },
    );
    expect(after.pipeline.flags.map((f) => f.code)).not.toContain("verdicts_held");
    expect(after.pipeline.flags.map((f) => f.code)).not.toContain("signatures_stale");
  });

  it("test signatures only are held where they are not accepted (production's default), however fresh", async () => {
    // The database is fresh now (the test above); only the acceptance of test signatures changes.
    const w = await s.startWorker("inspect,scan,finalize", {}, { ACCEPT_TEST_SIGNATURES: "false" });
    await s.stopWorkers([w]);
    const bytes = png(9, 9, 5);
    // No ingest role in this worker: the complete call moves the upload on.
    const u = await s.upload(bytes, { contentType: "image/png", complete: true });
    const held = await s.waitFor(u.id, ["held", "verified", "quarantined"]);
    expect(held).toMatchObject({ status: "held", verdict: null });
    expect(held.reasonDetail).toMatch(/test signatures only/);
    // Its watch reads clamd every second: two more readings, and it is still held (only
    // official signatures would release it).
    await new Promise((r) => setTimeout(r, 2500));
    expect((await s.uploads.getById(u.id))?.status).toBe("held");
  });
});
