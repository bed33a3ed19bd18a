import { Readable } from "node:stream";
import { signatureFacts, type ClamdVersionInfo, type SignatureFacts } from "./health.ts";
import type { PipelineLogger, Scanner } from "./deps.ts";

/**
 * What clamd scans with, as the worker sees it: the engine, the database version and date
 * (VERSION), and the operators' rule set (the signature-set probe of @intake/scanner's
 * custom-rules.ts: VERSION does not change when only custom rules do). One stable string
 * names it all, the "signature version" every verdict records (scanner_version), and
 * whether a clean result may be issued with it (held otherwise).
 */
export interface SignatureState {
  /** `<engine>/<database version|none>/<database date|none>/rules:<digest|none>`. */
  version: string;
  clamd: ClamdVersionInfo;
  facts: SignatureFacts;
  ruleSet: string | null;
  checkedAt: Date;
}

export type HoldReason = "signatures_stale" | "test_signatures_only";

export interface SignaturePolicy {
  maxAgeHours: number;
  /** Hold clean results while the database is older than maxAgeHours (or of unknown age). */
  holdWhenStale: boolean;
  /** Issue clean results with test signatures only. */
  acceptTestSignatures: boolean;
}

/** Whether a clean result may be issued with these signatures; why not, when it may not. */
export function holdReasonFor(facts: SignatureFacts, policy: SignaturePolicy): HoldReason | null {
  if (facts.testSignaturesOnly && !policy.acceptTestSignatures) return "test_signatures_only";
  if (facts.stale && policy.holdWhenStale) return "signatures_stale";
  return null;
}

export function holdExplanation(reason: HoldReason, facts: SignatureFacts): string {
  return reason === "test_signatures_only"
    ? "held: clamd has test signatures only, which this deployment does not accept for clean verdicts; it is checked again once official signatures load"
    : `held: the signature database is ${facts.ageHours === null ? "of unknown age" : `${facts.ageHours} hours old`} (at most ${facts.maxAgeHours} allowed); it is checked again once fresh signatures load`;
}

/** The stable signature version: a change in any part is a signature update. */
export function signatureVersionOf(clamd: ClamdVersionInfo, facts: SignatureFacts, ruleSet: string | null): string {
  // A test database names no version or date in VERSION; its files' date stands in (so a
  // rewritten test database is a new version, as a new daily.cvd is).
  const date = clamd.signaturesDate ?? (facts.dateSource === "test_database_files" ? facts.date : null);
  return `${clamd.engine}/${clamd.signatures}/${date ?? "none"}/rules:${ruleSet ?? "none"}`;
}

export interface SignatureWatchOptions {
  scanner: Pick<Scanner, "version" | "scan">;
  policy: SignaturePolicy;
  /** infra/clamd/up.sh's marker and the test database's date, when clamd runs on this host. */
  testSignaturesMarker: () => boolean;
  testDatabaseDate: () => Date | null;
  /** The probe of @intake/scanner (SIGNATURE_SET_PROBE) and the digest its answer names. */
  ruleSetProbe: { bytes: Buffer; digestOf(signature: string): string | null };
  logger: PipelineLogger;
  /** Called once per change of the signature version this process sees (not at the first reading). */
  onChange?: (from: SignatureState, to: SignatureState) => void;
  /** A reading is reused for this long (default 60 s). */
  ttlMs?: number;
  now?: () => Date;
}

/**
 * The worker's view of clamd's signatures: read at most once per ttl (the scan stage asks
 * after every scan), and again on refresh() (the worker's timer, a test). Drop-in for
 * ScannerVersionCache: get() is the version a verdict records.
 */
export class SignatureWatch {
  private readonly o: SignatureWatchOptions;
  private last: SignatureState | null = null;
  private reading: Promise<SignatureState> | null = null;
  constructor(o: SignatureWatchOptions) {
    this.o = o;
  }

  /** The signature version, as verdicts record it. */
  async get(): Promise<string> {
    return (await this.current()).version;
  }

  async details(): Promise<ClamdVersionInfo> {
    return (await this.current()).clamd;
  }

  /** The last reading if it is younger than the ttl, else a new one. */
  async current(): Promise<SignatureState> {
    const now = this.now();
    if (this.last && now.getTime() - this.last.checkedAt.getTime() < (this.o.ttlMs ?? 60_000)) return this.last;
    return this.refresh();
  }

  /** The last reading, without asking clamd (null before the first). */
  peek(): SignatureState | null {
    return this.last;
  }

  /** Why a clean result may not be issued now (null: it may). */
  async holdReason(): Promise<HoldReason | null> {
    return holdReasonFor((await this.current()).facts, this.o.policy);
  }

  /** Reads clamd now (concurrent callers share one reading). */
  refresh(): Promise<SignatureState> {
    this.reading ??= this.read().finally(() => (this.reading = null));
    return this.reading;
  }

  private async read(): Promise<SignatureState> {
    const clamd = await this.o.scanner.version();
    const probe = await this.o.scanner.scan(Readable.from([this.o.ruleSetProbe.bytes]));
    const ruleSet = probe.outcome === "infected" ? this.o.ruleSetProbe.digestOf(probe.signature) : null;
    const checkedAt = this.now();
    const facts = signatureFacts(clamd, { now: checkedAt, maxAgeHours: this.o.policy.maxAgeHours, testSignaturesMarker: this.o.testSignaturesMarker(), testDatabaseDate: this.o.testDatabaseDate() });
    const state: SignatureState = { version: signatureVersionOf(clamd, facts, ruleSet), clamd, facts, ruleSet, checkedAt };
    const before = this.last;
    this.last = state;
    if (before && before.version !== state.version) {
      this.o.logger.info({ from: before.version, to: state.version, stale: facts.stale, testSignaturesOnly: facts.testSignaturesOnly }, "clamd's signatures changed");
      this.o.onChange?.(before, state);
    }
    return state;
  }

  private now(): Date {
    return (this.o.now ?? (() => new Date()))();
  }
}

/**
 * clamd's signatures changed while a scan ran (thrown to retry it). A RELOAD swaps clamd's
 * engine under scans already running (they finish with the old one), so a scan that spans a
 * change was made with either version: recorded under the newer one, it would claim a
 * clearance the newer signatures never gave (the rescan for that version skips it, a
 * verdict cache entry under it serves the same bytes again), and under the older one a
 * clean result could be issued with signatures the watch no longer vouches for. The retry
 * scans with the version read before it.
 */
export class SignaturesChangedError extends Error {
  readonly code = "signatures_changed";
  constructor(before: string, after: string) {
    super(`clamd's signatures changed during the scan (${before} -> ${after}): scanning again with the new ones`);
    this.name = "SignaturesChangedError";
  }
}

/** Runs `scan` under one signature version: the one read before it, unchanged after it (else SignaturesChangedError). */
export async function underOneVersion<T>(versions: { get(): Promise<string> }, scan: () => Promise<T>): Promise<{ value: T; version: string }> {
  const version = await versions.get();
  const value = await scan();
  const after = await versions.get();
  if (after !== version) throw new SignaturesChangedError(version, after);
  return { value, version };
}
