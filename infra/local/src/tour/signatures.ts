import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { CUSTOM_COPY_PREFIX, SIGNATURE_SET_FILE, testDatabaseDate } from "@intake/scanner";
import type { DevStack } from "./dev-stack.ts";
import { say, see, until } from "./evidence.ts";

/** The tour's own rule files: intake-tour-<step>.yar, nothing else in the rules directory is touched. */
export const TOUR_RULE_FILE = /^intake-tour-[a-z-]+\.yar$/;

export function yaraRule(name: string, text: string): string {
  return `rule ${name}\n{\n  strings:\n    $a = "${text}"\n  condition:\n    $a\n}\n`;
}

export function tourRuleFiles(rulesDir: string): string[] {
  if (!existsSync(rulesDir)) return [];
  return readdirSync(rulesDir)
    .filter((n) => TOUR_RULE_FILE.test(n))
    .map((n) => join(rulesDir, n));
}

/** `npm run signatures -- reload`, printed as an operator would see it; it must succeed. */
export function reloadSignatures(stack: DevStack): string {
  const r = stack.signatures("reload");
  say.command("npm run signatures -- reload", r.output);
  see(r.code === 0, `npm run signatures -- reload exited ${r.code}: ${r.output.trim().split("\n").at(-1)}`);
  return r.output;
}

/** The operators' rule set clamd has loaded now (`npm run signatures -- status`). */
export function loadedRuleSet(stack: DevStack): string {
  const r = stack.signatures("status");
  see(r.code === 0, `npm run signatures -- status exited ${r.code}: ${r.output.trim()}`);
  return /rule set loaded: (\S+)/.exec(r.output)?.[1] ?? "none";
}

/**
 * Makes a change to what clamd loads (`change`: rule files, the database's dates), reloads
 * clamd, and when that moved the signature version (the rule set or the database's date)
 * waits until the worker has read it, so what comes next (a verdict, a hold, a rescan) is
 * made with it. Returns the reload's output.
 */
export async function reloadAndWait(stack: DevStack, signal: AbortSignal, what: string, change: () => void): Promise<string> {
  const counted = await stack.signatureChangesSeen();
  const before = { rules: loadedRuleSet(stack), date: testDatabaseDate(stack.settings.dataDir)?.getTime() ?? null };
  change();
  const out = reloadSignatures(stack);
  const after = { rules: /\(set ([0-9a-f]+)\)/.exec(out)?.[1] ?? "none", date: testDatabaseDate(stack.settings.dataDir)?.getTime() ?? null };
  if (before.rules !== after.rules || before.date !== after.date) {
    await workersSee(stack, counted, what, signal);
    say.seen(`the worker's signature watch read ${what} (intake_signature_version_changes_total ${counted} -> ${await stack.signatureChangesSeen()})`);
  }
  return out;
}

/**
 * Waits until the worker's signature watch has read a signature version it had not seen
 * when `before` was counted (intake_signature_version_changes_total): only then do its
 * verdicts, holds and rescans go by what clamd loaded.
 */
export async function workersSee(stack: DevStack, before: number, what: string, signal: AbortSignal): Promise<void> {
  await until(`the worker's signature watch reading ${what} (intake_signature_version_changes_total on ${stack.settings.metricsUrl} still ${before})`, async () => (await stack.signatureChangesSeen()) > before, { timeoutMs: 90_000, intervalMs: 250, signal });
}

/**
 * The generated test database's files (infra/clamd/up.sh): their dates are the database's
 * date, since clamd's VERSION names none for it (@intake/scanner testDatabaseDate). The
 * operators' rule copies and the rule-set marker are not the database and keep theirs.
 */
export function testDatabaseFiles(dir: string): { path: string; atimeMs: number; mtimeMs: number }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => !n.startsWith(CUSTOM_COPY_PREFIX) && n !== SIGNATURE_SET_FILE && n.startsWith("intake-"))
    .map((n) => {
      const s = statSync(join(dir, n));
      return { path: join(dir, n), atimeMs: s.atimeMs, mtimeMs: s.mtimeMs };
    });
}
