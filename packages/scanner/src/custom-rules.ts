/**
 * Operators' own detections (YARA rules, hash lists, body signatures) loaded into clamd
 * without a rebuild or a restart. clamd reads one DatabaseDirectory, so the rules live in a
 * directory of their own (CLAMD_CUSTOM_RULES_DIR) and `syncCustomRules` copies them into the
 * database directory as `custom-<name>` once each has been proved loadable; `reloadClamd`
 * then asks clamd to RELOAD and waits until it answers with the new rule set.
 *
 * Why validate first (measured on ClamAV 1.4.6):
 * - a malformed .ndb/.hdb/.hsb makes the whole load fail: on RELOAD clamd logs "Database
 *   load failed: Malformed database" and keeps the previous engine, but still answers
 *   "RELOADING"; at its next start it does not start at all (the scanner is down);
 * - a .yar with a syntax error loads "successfully" with the broken rules left out (a
 *   warning only: "failed to parse or load 2 yara rules ... successfully loaded 1"), so a
 *   rule the operator believes active would silently not be.
 * And why copy instead of letting operators write into the database directory: clamd's
 * SelfCheck (600 s) reloads whatever is there, validated or not.
 *
 * Which rule set clamd has loaded cannot be read from VERSION (it names the official daily
 * database only), so the sync writes `signature-set.ndb`: one body signature, named after
 * this sync (the rules' digest, the time, a random part), that matches a fixed probe. Scanning the probe tells what clamd really
 * loaded, wherever it runs; that confirms a RELOAD and lets the worker see rules change.
 */
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { command } from "./clamd-socket.ts";
import type { MalwareScanner } from "./clamd.ts";

/** The formats operators may drop in: YARA, MD5 and SHA-256 hash lists, body signatures. */
export const CUSTOM_RULE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.(?:yara?|hdb|hsb|ndb)$/i;
/** The prefix the copies carry in the database directory (so they are ours to replace). */
export const CUSTOM_COPY_PREFIX = "custom-";
export const SIGNATURE_SET_FILE = "signature-set.ndb";
/** What the signature-set signature matches: harmless ASCII at offset 0 of a file. */
export const SIGNATURE_SET_PROBE = Buffer.from("INTAKE-SIGNATURE-SET-PROBE:3f9c1e7a5b2d4c60\n", "ascii");
const SET_NAME = /^Intake\.SignatureSet\.([0-9a-f]{16})(?:\.UNOFFICIAL)?$/;

export interface RuleFileProblem {
  file: string;
  problem: string;
}

export interface SyncReport {
  /** False when a file was refused: then nothing was changed in the database directory. */
  ok: boolean;
  loaded: string[];
  refused: RuleFileProblem[];
  /** Files in the rules directory that are not rule files (README, editor backups...). */
  ignored: string[];
  /** Copies removed because their rule file is gone. */
  removed: string[];
  /** What the signature-set signature names once clamd has loaded this sync (unique per sync). */
  digest: string;
}

export interface SyncOptions {
  rulesDir: string;
  databaseDir: string;
  /** clamscan binary (default: "clamscan" on PATH). */
  clamscan?: string;
}

/**
 * Proves one rule file loads with the engine clamd uses (clamscan, same libclamav) and
 * loads whole: null when it does, else what clamscan said. The signature-set probe is what
 * is scanned: a rule that matches it is refused too, since clamd names one signature per
 * scan, and an operator's name in the probe's answer would hide which rule set is loaded
 * (the signature version would say "rules:none" whatever the rules, so a rule change would
 * end no clean verdict cache entry and start no rescan, and every reload would time out).
 */
export async function validateRuleFile(path: string, clamscan = "clamscan"): Promise<string | null> {
  const { code, stdout, stderr } = await run(clamscan, ["--no-summary", `--database=${path}`, "-"], SIGNATURE_SET_PROBE);
  const problems = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /LibClamAV Error|^ERROR:|failed to parse or load|empty database file/i.test(l));
  const match = /^stdin: (.+) FOUND$/m.exec(stdout)?.[1];
  if (code === 1 && match && problems.length === 0) return `the rule ${match.slice(0, 200)} matches Intake's signature-set probe (${SIGNATURE_SET_PROBE.toString("ascii").trim()}), which only the signature-set signature may match: narrow the rule`;
  if (code === 0 && problems.length === 0) return null;
  return (problems.length ? problems : [`clamscan exited with ${code}`]).slice(0, 4).join("; ").slice(0, 500);
}

/** Validates every rule file and, only when all pass, mirrors them into the database directory. */
export async function syncCustomRules(o: SyncOptions): Promise<SyncReport> {
  const names = (await readdir(o.rulesDir, { withFileTypes: true }).catch(notFoundAsEmpty)).filter((d) => d.isFile()).map((d) => d.name).sort();
  const rules = names.filter((n) => CUSTOM_RULE_FILE.test(n));
  const ignored = names.filter((n) => !CUSTOM_RULE_FILE.test(n));
  const refused: RuleFileProblem[] = [];
  const contents = new Map<string, Buffer>();
  for (const name of rules) {
    const problem = await validateRuleFile(join(o.rulesDir, name), o.clamscan);
    if (problem) refused.push({ file: name, problem });
    else contents.set(name, await readFile(join(o.rulesDir, name)));
  }
  // Named per load, not per content: the probe then proves that this RELOAD took effect
  // (a database added or replaced beside unchanged rules, a daily.cvd copied in, included).
  const digest = createHash("sha256").update(`${ruleSetDigest(contents)}:${Date.now()}:${randomUUID()}`).digest("hex").slice(0, 16);
  const existing = (await readdir(o.databaseDir)).filter((n) => n.startsWith(CUSTOM_COPY_PREFIX));
  const removed = existing.filter((n) => !contents.has(n.slice(CUSTOM_COPY_PREFIX.length)));
  if (refused.length > 0) return { ok: false, loaded: [], refused, ignored, removed: [], digest };

  // Each file whole or not at all (rename), since SelfCheck may read the directory any time.
  for (const [name, bytes] of contents) await replaceFile(join(o.databaseDir, CUSTOM_COPY_PREFIX + name), bytes);
  for (const name of removed) await rm(join(o.databaseDir, name), { force: true });
  await replaceFile(join(o.databaseDir, SIGNATURE_SET_FILE), Buffer.from(`Intake.SignatureSet.${digest}:0:0:${SIGNATURE_SET_PROBE.toString("hex")}\n`));
  return { ok: true, loaded: [...contents.keys()], refused, ignored, removed, digest };
}

/** The rule set's identity: its files' names and bytes (16 hex digits of a SHA-256). */
export function ruleSetDigest(files: ReadonlyMap<string, Buffer>): string {
  const h = createHash("sha256");
  for (const [name, bytes] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) h.update(`${name}\0${createHash("sha256").update(bytes).digest("hex")}\n`);
  return h.digest("hex").slice(0, 16);
}

/**
 * The rule set clamd has loaded, by scanning the probe: its digest, or null when clamd
 * loaded none (no signature-set.ndb: never synced, or a clamd we do not manage).
 */
export async function loadedRuleSet(scanner: Pick<MalwareScanner, "scan">): Promise<string | null> {
  const report = await scanner.scan(Readable.from([SIGNATURE_SET_PROBE]));
  return report.outcome === "infected" ? ruleSetOfSignature(report.signature) : null;
}

/** The digest a signature-set signature names ("Intake.SignatureSet.<digest>.UNOFFICIAL"), or null. */
export function ruleSetOfSignature(signature: string): string | null {
  return SET_NAME.exec(signature)?.[1] ?? null;
}

export class ReloadFailedError extends Error {
  readonly code = "signature_reload_failed";
  constructor(message: string) {
    super(message);
    this.name = "ReloadFailedError";
  }
}

/**
 * RELOAD, then wait until clamd answers with rule set `digest`. clamd says "RELOADING"
 * whether or not the load will succeed (a failed one keeps the previous engine, logged
 * only), so only the probe proves it.
 */
export async function reloadClamd(clamd: { host: string; port: number; scanner: Pick<MalwareScanner, "scan"> }, digest: string, o: { timeoutMs?: number; pollMs?: number } = {}): Promise<void> {
  const reply = (await command(clamd.host, clamd.port, 5000, "RELOAD")).replace(/\0/g, "").trim();
  if (reply !== "RELOADING") throw new ReloadFailedError(`clamd answered RELOAD with ${JSON.stringify(reply.slice(0, 80))}`);
  const until = Date.now() + (o.timeoutMs ?? 120_000);
  let seen: string | null = null;
  for (;;) {
    seen = await loadedRuleSet(clamd.scanner).catch(() => seen);
    if (seen === digest) return;
    if (Date.now() > until) throw new ReloadFailedError(`clamd did not load rule set ${digest} (it answers ${seen ?? "none"}): look at clamd's log, a database it cannot parse keeps the previous one loaded`);
    await new Promise((r) => setTimeout(r, o.pollMs ?? 250));
  }
}

async function replaceFile(path: string, bytes: Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

function notFoundAsEmpty(err: NodeJS.ErrnoException): never[] {
  if (err.code === "ENOENT") return [];
  throw err;
}

function run(bin: string, args: string[], input: Buffer): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout = (stdout + d).slice(-20_000)));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-20_000)));
    // clamscan may exit before reading stdin (a database it cannot load): no EPIPE crash.
    child.stdin.on("error", () => undefined);
    child.stdin.end(input);
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}
