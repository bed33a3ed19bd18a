import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOM_RULE_FILE, createClamdScanner, loadedRuleSet, ruleSetOfSignature, SIGNATURE_SET_FILE, SIGNATURE_SET_PROBE } from "@intake/scanner";
import { startSmallClamd, type SmallClamd } from "../support/small-clamd.ts";
import { readRepoFile, ROOT } from "./support/repo.ts";

/**
 * intake-rules (infra/clamd/rules-sync.sh), the intake-clamd image's custom-rule reload, run
 * here as the image runs it: /bin/sh (dash, POSIX like busybox sh), clamscan, and busybox's nc
 * (the image's; `apt-get install busybox` on a machine without it) against a clamd of this
 * test's own (never the shared one on 3310). The workers' side is read with the scanner's
 * own functions: the probe scan and ruleSetOfSignature.
 */
const SCRIPT = join(ROOT, "infra/clamd/rules-sync.sh");
const BUSYBOX = ["/usr/bin/busybox", "/bin/busybox"].find((p) => existsSync(p));

let clamd: SmallClamd;
let dir: string;
let rules: string;
let db: string;
let env: Record<string, string>;

beforeAll(async () => {
  expect(BUSYBOX, "busybox (the image's nc): apt-get install busybox").toBeDefined();
  clamd = await startSmallClamd({ maxFileSize: 1024 * 1024 });
  dir = mkdtempSync(join(tmpdir(), "intake-rules-"));
  rules = join(dir, "rules");
  mkdirSync(rules);
  mkdirSync(join(dir, "bin"));
  symlinkSync(BUSYBOX!, join(dir, "bin", "nc"));
  db = join(clamd.dataDir, "clamd", "db");
  env = { PATH: `${join(dir, "bin")}:${process.env.PATH}`, CLAMD_CUSTOM_RULES_DIR: rules, CLAMD_DATABASE_DIR: db, CLAMD_HOST: "127.0.0.1", CLAMD_PORT: String(clamd.port) };
}, 180_000);
afterAll(() => {
  clamd?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const rulesCmd = (cmd: string) => spawnSync("sh", [SCRIPT, cmd], { env, encoding: "utf8", timeout: 150_000 });
const scanner = () => createClamdScanner({ port: clamd.port, timeoutMs: 30_000 });
const scan = async (text: string) => scanner().scan(Readable.from([Buffer.from(text)]));
const dbState = () => Object.fromEntries(readdirSync(db).filter((f) => f.startsWith("custom-") || f === SIGNATURE_SET_FILE).sort().map((f) => [f, readFileSync(join(db, f), "utf8")]));

const MARKER = "INTAKE-CUSTOM-RULE-CONTAINER-8821";
const YARA = `rule IntakeContainerRule { strings: $a = "${MARKER}" condition: $a }\n`;

describe("intake-rules (infra/clamd/rules-sync.sh) against a real clamd", () => {
  it("carries the scanner's probe and rule-file pattern (what the workers' signature watch reads)", () => {
    const script = readRepoFile("infra/clamd/rules-sync.sh");
    expect(script).toContain(`PROBE_TEXT='${SIGNATURE_SET_PROBE.toString("ascii").trimEnd()}'`);
    expect(script).toContain(`PROBE_HEX=${SIGNATURE_SET_PROBE.toString("hex")}\n`);
    const lib = join(dir, "rules-lib.sh");
    writeFileSync(lib, script.replace(/^case "\$\{1:-\}" in[\s\S]*$/m, ""));
    for (const name of ["a.yar", "B.YARA", "c.hdb", "d.Hsb", "e.ndb", "f.ldb", ".hidden.yar", "x.yar.bak", `${"a".repeat(122)}.yar`, `${"a".repeat(121)}.yar`]) {
      const r = spawnSync("sh", ["-c", `. "${lib}"; is_rule_file "$1"`, "sh", name], { encoding: "utf8" });
      expect([name, r.status === 0], r.stderr).toEqual([name, CUSTOM_RULE_FILE.test(name)]);
    }
  });

  it("loads a YARA rule: a matching scan names it, and the probe names the new set the workers' parser reads", async () => {
    writeFileSync(join(rules, "container.yar"), YARA);
    writeFileSync(join(rules, "README"), "not a rule\n");
    const r = rulesCmd("reload");
    expect(r.status, r.stderr + r.stdout).toBe(0);
    const digest = /\(set ([0-9a-f]{16})\)/.exec(r.stdout)?.[1];
    expect(digest).toBeDefined();
    expect(r.stderr).toMatch(/ignored README/);
    expect(await scan(`some text ${MARKER} more`)).toMatchObject({ outcome: "infected", signature: "YARA.IntakeContainerRule.UNOFFICIAL" });
    expect(await scan("clean text")).toMatchObject({ outcome: "clean" });
    const probe = await scanner().scan(Readable.from([SIGNATURE_SET_PROBE]));
    expect(probe.outcome === "infected" && ruleSetOfSignature(probe.signature)).toBe(digest);
    expect(await loadedRuleSet(scanner())).toBe(digest);
    expect(Object.keys(dbState())).toEqual(["custom-container.yar", SIGNATURE_SET_FILE]);
  }, 180_000);

  it.each([
    ["a YARA file with a syntax error", "broken.yar", 'rule Broken { strings: $a = "x" condition: $b }\n', /REFUSED broken\.yar: .*undefined string/],
    ["a malformed body signature", "broken.ndb", "Broken:0:*:zz\n", /REFUSED broken\.ndb: .*Malformed/i],
    ["a hash list with a bad line", "broken.hsb", "nothex:12:Bad\n", /REFUSED broken\.hsb/],
    ["a rule matching the signature-set probe", "probe.yara", 'rule P { strings: $a = "INTAKE-SIGNATURE-SET-PROBE" condition: $a }\n', /REFUSED probe\.yara: the rule YARA\.P\.UNOFFICIAL matches Intake's signature-set probe/],
  ])("refuses %s: nothing changes in the database directory, clamd keeps its set, exit 1", async (_, name, text, problem) => {
    const before = dbState();
    const loaded = await loadedRuleSet(scanner());
    writeFileSync(join(rules, name), text);
    // A valid change beside it is not applied either.
    writeFileSync(join(rules, "extra.hdb"), "44d88612fea8a8f36de82e1278abb02f:68:Intake.Extra\n");
    try {
      const r = rulesCmd("reload");
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(problem);
      expect(r.stderr).toMatch(/nothing changed in/);
      expect(dbState()).toEqual(before);
      expect(await loadedRuleSet(scanner())).toBe(loaded);
      expect(rulesCmd("check").status).toBe(1);
    } finally {
      unlinkSync(join(rules, name));
      unlinkSync(join(rules, "extra.hdb"));
    }
  }, 180_000);

  it("names a new set after each change, and removes the copy of a rule file taken away", async () => {
    const first = await loadedRuleSet(scanner());
    writeFileSync(join(rules, "hashes.hsb"), `${"ab".repeat(32)}:*:Intake.Hash:73\n`);
    const r1 = rulesCmd("reload");
    expect(r1.status, r1.stderr).toBe(0);
    const second = await loadedRuleSet(scanner());
    expect(second).toMatch(/^[0-9a-f]{16}$/);
    expect(second).not.toBe(first);
    unlinkSync(join(rules, "container.yar"));
    const r2 = rulesCmd("reload");
    expect(r2.status, r2.stderr).toBe(0);
    expect(r2.stdout).toMatch(/removed custom-container\.yar/);
    const third = await loadedRuleSet(scanner());
    expect([third === first, third === second]).toEqual([false, false]);
    expect(Object.keys(dbState())).toEqual(["custom-hashes.hsb", SIGNATURE_SET_FILE]);
    expect(await scan(`some text ${MARKER} more`)).toMatchObject({ outcome: "clean" });
    // The same rules again: still a new set (named per load, as custom-rules.ts does).
    expect(rulesCmd("reload").status).toBe(0);
    expect(await loadedRuleSet(scanner())).not.toBe(third);
  }, 240_000);

  it("fails when clamd does not answer, after writing the files (exit 1, named)", () => {
    const r = spawnSync("sh", [SCRIPT, "reload"], { env: { ...env, CLAMD_PORT: "1" }, encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/answered RELOAD with ''/);
  });

  it("refuses an unknown command with exit 2", () => {
    expect(rulesCmd("frobnicate").status).toBe(2);
  });
});
