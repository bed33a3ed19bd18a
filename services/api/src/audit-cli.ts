import { parseArgs } from "node:util";
import { openDatabase, verifyAuditChain, type AuditChainLink } from "@intake/db";
import { loadDatabaseConfigOrExit } from "@intake/runtime";

/**
 * The audit trail's hash chain, checked against the same database as the API (same env:
 * SQLite under DATA_DIR by default, DATABASE_URL for PostgreSQL). It only reads: it neither
 * migrates nor repairs what it examines.
 *
 *   audit-cli.ts verify [--anchor SEQ:HASH]... [--json]
 *
 * Exit status: 0 the chain verifies, 1 it is broken (the first broken row is named), 2 it
 * could not be checked (database unreachable, not migrated), 64 usage.
 * An anchor is a line `verify` printed earlier (seq and hash of the head then), kept outside
 * the database: it catches a chain rewritten from before that point on, which the chain
 * alone cannot show.
 */
const USAGE = "usage: audit-cli.ts verify [--anchor SEQ:HASH]... [--json]";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(64); // EX_USAGE
}

function parse(argv: string[]): { command: string | undefined; anchors: AuditChainLink[]; json: boolean } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { anchor: { type: "string", multiple: true }, json: { type: "boolean" } } });
  } catch (err) {
    return fail((err as Error).message);
  }
  const anchors = (parsed.values.anchor ?? []).map((a) => {
    const m = /^([1-9]\d{0,15}):([0-9a-f]{64})$/.exec(a);
    if (!m) return fail(`--anchor ${a}: expected SEQ:HASH (a seq and a 64-digit lower-case hex sha256, as verify prints them)`);
    return { seq: Number(m[1]), hash: m[2]! };
  });
  if (parsed.positionals.length > 1) fail(`unexpected argument ${parsed.positionals[1]}`);
  return { command: parsed.positionals[0], anchors, json: parsed.values.json ?? false };
}

const { command, anchors, json } = parse(process.argv.slice(2));
if (command !== "verify") fail(command ? `unknown command ${command}` : "no command");

const config = loadDatabaseConfigOrExit();
const db = openDatabase(config.database);
try {
  const verdict = await verifyAuditChain(db, { anchors });
  if (json) process.stdout.write(`${JSON.stringify(verdict)}\n`);
  else if (verdict.ok) {
    process.stdout.write(`OK: ${verdict.count} audit rows verify, seq 1 to ${verdict.head.seq}\n`);
    process.stdout.write(`anchor: ${verdict.head.seq}:${verdict.head.hash}\n`);
  } else {
    const b = verdict.broken;
    const where = [b.seq !== null ? `seq ${b.seq}` : null, b.id !== null ? `id ${b.id}` : null].filter(Boolean).join(", ");
    process.stdout.write(`BROKEN: ${b.problem.replaceAll("_", " ")}${where ? ` at ${where}` : ""}\n`);
    process.stdout.write(`  ${b.message}\n`);
    process.stdout.write(verdict.count > 0 ? `  the ${verdict.count} rows before it verify (seq 1 to ${verdict.count})\n` : "  no row before it verifies\n");
  }
  process.exitCode = verdict.ok ? 0 : 1;
} catch (err) {
  // Most likely an unreachable or unmigrated database: say so without a stack.
  process.stderr.write(`could not verify the audit chain: ${(err as Error).message}\n`);
  process.exitCode = 2;
} finally {
  await db.destroy();
}
