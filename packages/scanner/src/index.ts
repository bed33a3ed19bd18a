/**
 * @intake/scanner: malware scanning behind a small interface, implemented over clamd's
 * INSTREAM protocol (infra/clamd runs the daemon). Fail closed: every transient failure is
 * a thrown ScanFailedError; only clamd's exact "stream: OK" after the whole body is clean.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

export { createClamdScanner } from "./clamd.ts";
export type { ClamdScannerOptions, MalwareScanner, ScanBody, ScanReport } from "./clamd.ts";
export { ScanFailedError } from "./errors.ts";
export { cabHeaderProbe, encryptedZipProbe, gzipOfZeros, mailAttachmentProbe, pdfStreamProbe, swfProbe, probeClamdLimits, sevenZipHeaderProbe, withLimitsProbe } from "./limits-probe.ts";
export type { LimitsProbeResult, ProbedScanner } from "./limits-probe.ts";
export type { ScanFailureKind } from "./errors.ts";
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
