/**
 * npm run signatures -- <command>: the operators' custom rules and clamd's signatures.
 *
 *   check    validate every rule file in CLAMD_CUSTOM_RULES_DIR; change nothing
 *   reload   validate, copy them into clamd's database directory, RELOAD clamd and wait
 *            until it answers with the new rule set (also loads a database freshclam or an
 *            operator put there: a new daily.cvd, a rewritten test database)
 *   status   what clamd has loaded: VERSION and the rule set's digest
 *
 * Runs where clamd's database directory is (the clamd host or a volume it shares). Exit
 * codes: 0 done, 1 a rule file refused or clamd did not load (nothing changed, or the
 * previous database still loaded), 2 usage or configuration.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadSignaturesCommandConfig, type SignaturesCommandConfig } from "@intake/runtime";
import { createClamdScanner, loadedRuleSet, reloadClamd, syncCustomRules, validateRuleFile, CUSTOM_RULE_FILE } from "@intake/scanner";
import { readdir } from "node:fs/promises";

const USAGE = "usage: npm run signatures -- check | reload | status";

/** clamd's DatabaseDirectory: configured, else the one infra/clamd/up.sh wrote into clamd.conf. */
function databaseDirOf(config: SignaturesCommandConfig): string {
  if (config.signatures.databaseDir) return config.signatures.databaseDir;
  const conf = join(config.dataDir, "clamd", "clamd.conf");
  const dir = /^DatabaseDirectory\s+(.+)$/m.exec(readFileSync(conf, "utf8"))?.[1]?.trim();
  if (!dir) throw new Error(`${conf} names no DatabaseDirectory: set CLAMD_DATABASE_DIR`);
  return dir;
}

async function main(command: string | undefined): Promise<number> {
  if (!command || !["check", "reload", "status"].includes(command)) {
    console.error(USAGE);
    return 2;
  }
  const config = loadSignaturesCommandConfig(process.env);
  const scanner = createClamdScanner({ host: config.clamd.host, port: config.clamd.port, timeoutMs: 30_000 });
  const rulesDir = config.signatures.customRulesDir;

  if (command === "status") {
    const v = await scanner.version();
    console.log(`clamd ${config.clamd.host}:${config.clamd.port}: ${v.raw}`);
    console.log(`rule set loaded: ${(await loadedRuleSet(scanner)) ?? "none (never reloaded through this command)"}`);
    return 0;
  }
  if (command === "check") {
    let bad = 0;
    const names = (await readdir(rulesDir).catch(() => [] as string[])).filter((n) => CUSTOM_RULE_FILE.test(n)).sort();
    for (const name of names) {
      const problem = await validateRuleFile(join(rulesDir, name));
      console.log(problem ? `REFUSED ${name}: ${problem}` : `ok      ${name}`);
      if (problem) bad++;
    }
    console.log(`${names.length} rule file(s) in ${rulesDir}, ${bad} refused`);
    return bad ? 1 : 0;
  }

  const databaseDir = databaseDirOf(config);
  const report = await syncCustomRules({ rulesDir, databaseDir });
  for (const r of report.refused) console.error(`REFUSED ${r.file}: ${r.problem}`);
  for (const name of report.ignored) console.log(`ignored ${name} (not a .yar/.yara/.hdb/.hsb/.ndb file)`);
  if (!report.ok) {
    console.error(`nothing changed in ${databaseDir}: fix or remove the refused file(s); clamd keeps its current rules`);
    return 1;
  }
  console.log(`rules: ${report.loaded.length ? report.loaded.join(", ") : "none"}${report.removed.length ? `; removed ${report.removed.join(", ")}` : ""} (set ${report.digest})`);
  await reloadClamd({ host: config.clamd.host, port: config.clamd.port, scanner }, report.digest);
  console.log(`clamd reloaded: ${(await scanner.version()).raw}, rule set ${report.digest}`);
  return 0;
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`signatures: ${(err as Error).message}`);
    process.exit((err as { name?: string }).name === "ConfigError" ? 2 : 1);
  },
);
