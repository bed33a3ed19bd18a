import { parseArgs } from "node:util";
import { openDatabase, prepareSchema, VerdictCacheRepository } from "@intake/db";
import { loadDatabaseConfigOrExit } from "@intake/runtime";

/**
 * The verdict cache's entries (@intake/db verdict-cache.ts), against the workers' database
 * (database settings only, as the keys command reads them):
 *
 *   verdict-cache-cli.ts status                               entries by outcome
 *   verdict-cache-cli.ts flush [--clean|--malware] [--sha256 HEX]   deletes them (all by default)
 *
 * A flush is safe at any time: a missing entry only means clamd scans those bytes again.
 * After a false positive is fixed (the new signatures no longer name it), flush the
 * malware entry of those bytes (--malware --sha256), or all malware entries.
 */
const USAGE = "usage: verdict-cache-cli.ts status | flush [--clean|--malware] [--sha256 HEX]";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(64); // EX_USAGE
}

let parsed: { positionals: string[]; values: { clean?: boolean; malware?: boolean; sha256?: string } };
try {
  parsed = parseArgs({ args: process.argv.slice(2), allowPositionals: true, strict: true, options: { clean: { type: "boolean" }, malware: { type: "boolean" }, sha256: { type: "string" } } });
} catch (err) {
  fail((err as Error).message);
}
const [command] = parsed.positionals;
if (command !== "status" && command !== "flush") fail(command ? `unknown command ${command}` : "no command");
const { clean, malware, sha256 } = parsed.values;
if (clean && malware) fail("--clean and --malware exclude each other (neither: both outcomes)");
if (sha256 !== undefined && !/^[0-9a-f]{64}$/i.test(sha256)) fail("--sha256 must be 64 hex digits");

const db = openDatabase(loadDatabaseConfigOrExit().database);
try {
  await prepareSchema(db, { migrateOnStart: false });
  const entries = new VerdictCacheRepository(db);
  if (command === "status") {
    const n = await entries.counts();
    process.stdout.write(`verdict cache: ${n.clean} clean, ${n.malware} malware entries\n`);
  } else {
    const deleted = await entries.flush({ ...(clean ? { outcome: "clean" as const } : malware ? { outcome: "malware" as const } : {}), ...(sha256 ? { sha256: sha256.toLowerCase() } : {}) });
    process.stdout.write(`verdict cache: ${deleted} entries deleted\n`);
  }
} catch (err) {
  // A schema behind this release (or a database away): said in one line, no stack.
  process.stderr.write(`verdict cache: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
