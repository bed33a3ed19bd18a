/**
 * @intake/scanner: malware scanning behind a small interface, implemented over clamd's
 * INSTREAM protocol (infra/clamd runs the daemon). Fail closed: every transient failure is
 * a thrown ScanFailedError; only clamd's exact "stream: OK" after the whole body is clean.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { CUSTOM_COPY_PREFIX, SIGNATURE_SET_FILE } from "./custom-rules.ts";

export { createClamdScanner } from "./clamd.ts";
export type { ClamdScannerOptions, MalwareScanner, ScanBody, ScanReport } from "./clamd.ts";
export { ScanFailedError } from "./errors.ts";
export { cabHeaderProbe, encryptedZipProbe, gzipOfZeros, mailAttachmentProbe, pdfStreamProbe, swfProbe, probeClamdLimits, sevenZipHeaderProbe, withLimitsProbe } from "./limits-probe.ts";
export type { LimitsProbeResult, ProbedScanner } from "./limits-probe.ts";
export type { ScanFailureKind } from "./errors.ts";
export { CUSTOM_COPY_PREFIX, CUSTOM_RULE_FILE, loadedRuleSet, ReloadFailedError, reloadClamd, ruleSetDigest, ruleSetOfSignature, SIGNATURE_SET_FILE, SIGNATURE_SET_PROBE, syncCustomRules, validateRuleFile } from "./custom-rules.ts";
export type { RuleFileProblem, SyncOptions, SyncReport } from "./custom-rules.ts";
export { classifyClamdReply, parseVersionReply, MAX_REPLY_CHARS } from "./reply.ts";
import type { ScannerVersion } from "./reply.ts";
export type { ClamdReplyClass, ReplyErrorKind, ScannerVersion, UnscannableKind } from "./reply.ts";

/** Name of the marker infra/clamd/up.sh writes next to the clamd config. */
export const TEST_SIGNATURES_MARKER = "TEST_SIGNATURES_ONLY";

/**
 * True when the local clamd runs with the generated test database only (EICAR and Intake
 * markers, no official signatures): infra/clamd/up.sh writes `$DATA_DIR/clamd/TEST_SIGNATURES_ONLY`
 * iff so. `dataDir` is the stack's DATA_DIR (e.g. <repo>/.data); the clamd directory
 * itself is accepted too, so either reading of "data dir" finds the marker.
 */
export function hasTestSignaturesOnly(dataDir: string): boolean {
  return existsSync(join(dataDir, "clamd", TEST_SIGNATURES_MARKER)) || existsSync(join(dataDir, TEST_SIGNATURES_MARKER));
}

export const TEST_SIGNATURES_WARNING =
  "clamd runs on TEST SIGNATURES ONLY (no official ClamAV database): uploads are NOT scanned for real malware";

/**
 * clamd's VERSION names a signature database version only when an official one is loaded
 * ("ClamAV 1.4.6/27431/<date>" against plain "ClamAV 1.4.6"): this holds wherever clamd
 * runs, where the marker above only exists next to a clamd on this host.
 */
export function loadsTestSignaturesOnly(version: Pick<ScannerVersion, "signatures">): boolean {
  return version.signatures === "none";
}

/**
 * Operators' rules and the rule-set marker (custom-rules.ts) are written whenever rules are
 * reloaded: their age says nothing about how fresh the malware signatures are.
 */
function isOperatorsFile(name: string): boolean {
  return name.startsWith(CUSTOM_COPY_PREFIX) || name === SIGNATURE_SET_FILE;
}

/** Files clamd loads as signature databases (man clamd: the database directory). */
const DATABASE_FILE = /\.(?:cvd|cld|cud|ndb|hdb|hsb|mdb|msb|ldb|ldu|idb|cdb|fp|sfp|ign2?|pdb|gdb|wdb|yara?|cbc|ftm|info|crb|cat)$/i;

/**
 * When the generated test database next to a local clamd was written (the newest of its
 * files: infra/clamd/up.sh rewrites them on every start), or null when there is none here.
 * clamd's VERSION names no date for a database without daily.cvd, so this is the only age
 * a test deployment has; `dataDir` is read as hasTestSignaturesOnly reads it.
 */
export function testDatabaseDate(dataDir: string): Date | null {
  if (!hasTestSignaturesOnly(dataDir)) return null;
  for (const dir of [join(dataDir, "clamd", "db"), join(dataDir, "db")]) {
    let newest = 0;
    try {
      for (const name of readdirSync(dir)) if (DATABASE_FILE.test(name) && !isOperatorsFile(name)) newest = Math.max(newest, statSync(join(dir, name)).mtimeMs);
    } catch {
      continue; // no such directory: try the other reading of "data dir"
    }
    if (newest > 0) return new Date(newest);
  }
  return null;
}
