/**
 * Scale-out benchmark (issue 13 §5):
 *   node test/bench/scale-out.ts [--uploads 2000] [--clients 32] [--per-role 1,2] [--kill] [--apis 2]
 *
 * For each --per-role value, one run (test/scale/support/scale-run.ts) of its own, one after
 * the other in this invocation so they see the same machine: `--apis` API processes and that
 * many worker processes per role (ingest, inspect, scan, finalize, reaper), each a child
 * process started as production starts it, against one Redis, a fresh PostgreSQL database,
 * one local S3+SQS process and the shared clamd; `--clients` concurrent clients send
 * `--uploads` uploads of 4 KiB-2 MiB (1% of 6-12 MiB: multipart, staged; 5% EICAR). With
 * --kill, one process of each role is SIGKILLed once half have a verdict and a replacement
 * started. Each run is checked as the CI test checks it (exactly one verdict each, none
 * lost or stuck, the bucket's prefixes), then reports uploads/s (first create to last
 * verdict), p50/p99 create -> verdict, CPU seconds per kind of process from /proc, and the
 * load average; at the end, the throughput ratio of the last run to the first.
 */
import { cpus } from "node:os";
import { runScaleOut, type ScaleRunReport } from "../scale/support/scale-run.ts";

const argText = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const UPLOADS = Number(argText("uploads", "2000"));
const CLIENTS = Number(argText("clients", "32"));
const APIS = Number(argText("apis", "2"));
const PER_ROLE = argText("per-role", "1,2").split(",").map(Number);
const KILL = process.argv.includes("--kill");

const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "-");
const problems = (r: ScaleRunReport) => {
  const out: string[] = [];
  const n = (o: object | unknown[]) => (Array.isArray(o) ? o.length : Object.keys(o).length);
  if (r.clientErrors.length) out.push(`${r.clientErrors.length} client errors (first: ${r.clientErrors[0]})`);
  if (n(r.notFinal)) out.push(`${n(r.notFinal)} not final (lost or stuck): ${JSON.stringify(r.notFinal).slice(0, 300)}`);
  if (n(r.wrongVerdicts)) out.push(`${n(r.wrongVerdicts)} wrong verdicts: ${JSON.stringify(r.wrongVerdicts).slice(0, 300)}`);
  if (n(r.doubleVerdicts)) out.push(`${n(r.doubleVerdicts)} without exactly one verdict: ${JSON.stringify(r.doubleVerdicts).slice(0, 300)}`);
  if (r.pendingObjects.length) out.push(`${r.pendingObjects.length} objects left under pending/`);
  if (n(r.misplacedObjects)) out.push(`${n(r.misplacedObjects)} misplaced: ${JSON.stringify(r.misplacedObjects).slice(0, 300)}`);
  if (r.strayObjects.length) out.push(`${r.strayObjects.length} stray objects: ${r.strayObjects.slice(0, 3).join(", ")}`);
  return out;
};

console.log(`# scale-out bench: ${UPLOADS} uploads, ${CLIENTS} clients, ${APIS} API processes, per role ${PER_ROLE.join(" then ")}${KILL ? ", SIGKILL of one process per role halfway" : ""}; ${cpus().length} cores`);
const reports: ScaleRunReport[] = [];
let failed = false;
for (const perRole of PER_ROLE) {
  const r = await runScaleOut({ uploads: UPLOADS, clients: CLIENTS, perRole, apis: APIS, kill: KILL, log: (l) => console.log(`  [per-role ${perRole}] ${l}`) });
  reports.push(r);
  const bad = problems(r);
  failed ||= bad.length > 0;
  const cpuTotal = Object.values(r.cpu).reduce((s, v) => s + v, 0);
  console.log(`\n## ${perRole} per role: ${r.verified} verified, ${r.quarantined} quarantined (${r.multipart} multipart, ${r.staged} staged, ${r.putOnly} announced by the storage event only)`);
  console.log(`   correctness: ${bad.length ? bad.join("; ") : "held (every upload one verdict, none lost or stuck, nothing under pending/, none in both prefixes)"}`);
  console.log(`   staging copies left by killed processes: ${r.orphanStagingCopies.length}`);
  if (r.kills.length) console.log(`   kills: ${r.kills.map((k) => `${k.name} at ${k.atVerdicts} verdicts -> ${k.replacement}`).join(", ")}`);
  console.log(`   ${fmt(r.uploadsPerSecond)} uploads/s over ${fmt(r.wallSeconds)} s; create -> verdict p50 ${fmt(r.p50Ms / 1000)} s, p99 ${fmt(r.p99Ms / 1000)} s`);
  console.log(`   CPU seconds (share of ${fmt(cpuTotal)} s over ${fmt(r.wallSeconds)} s wall, ${fmt(cpuTotal / r.wallSeconds, 2)} cores busy):`);
  for (const [kind, s] of Object.entries(r.cpu).sort((a, b) => b[1] - a[1])) console.log(`     ${kind.padEnd(10)} ${fmt(s).padStart(7)}  ${fmt((100 * s) / cpuTotal, 0).padStart(3)}%`);
  console.log(`   whole machine: ${fmt(r.machineBusyCores, 2)} of ${cpus().length} cores busy over the run (this run's processes ${fmt(cpuTotal / r.wallSeconds, 2)}, the rest is anyone else's); load average after: ${r.loadAverage.map((l) => l.toFixed(2)).join(" ")}; logs ${r.logDir}`);
}
if (reports.length > 1) {
  const first = reports[0]!;
  const last = reports[reports.length - 1]!;
  console.log(`\nratio ${last.options.perRole} per role / ${first.options.perRole} per role: ${fmt(last.uploadsPerSecond / first.uploadsPerSecond, 2)} (${fmt(last.uploadsPerSecond)} / ${fmt(first.uploadsPerSecond)} uploads/s)`);
}
process.exit(failed ? 1 : 0);
