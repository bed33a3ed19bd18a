/**
 * npm run rescan -- <command>: rescans after signature updates, from the command line, on
 * the same database as the workers (database settings only, as `npm run keys`).
 *
 *   start [--tenant T] [--from DATE] [--to DATE] [--by NAME]   a run by hand (audited, actor cli)
 *   list                                                        recent runs and their progress
 *   cancel <run id> [--by NAME]                                 stop planning; queued items are skipped
 *
 * The rescan workers (role rescan) plan and scan it at their next tick. DATE is ISO-8601
 * (2026-11-30 or a time); without --from, RESCAN_WINDOW_DAYS (30) back. Exit codes: 0 done,
 * 1 refused (bad dates, no such tenant or run), 64 usage.
 */
import { userInfo } from "node:os";
import { parseArgs } from "node:util";
import { openDatabase, RescanRunRepository, TenantRepository, UNPINNED, prepareSchema } from "@intake/db";
import { IntakeError, NotFoundError, parseRescanRequest } from "@intake/domain";
import { loadDatabaseConfigOrExit } from "@intake/runtime";

const USAGE = "usage: npm run rescan -- start [--tenant T] [--from DATE] [--to DATE] [--by NAME] | list | cancel <run id> [--by NAME]";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(64);
}

let parsed;
try {
  parsed = parseArgs({ args: process.argv.slice(2), allowPositionals: true, strict: true, options: { tenant: { type: "string" }, from: { type: "string" }, to: { type: "string" }, by: { type: "string" } } });
} catch (err) {
  fail((err as Error).message);
}
const { values, positionals } = parsed;
const command = positionals[0];
if (!command || !["start", "list", "cancel"].includes(command)) fail(command ? `unknown command ${command}` : "no command");
const windowDays = Number(process.env.RESCAN_WINDOW_DAYS ?? 30);
if (!Number.isInteger(windowDays) || windowDays < 1 || windowDays > 3650) fail("RESCAN_WINDOW_DAYS must be a whole number of days, 1 to 3650");
const by = values.by ?? `${userInfo().username}@cli`;

const config = loadDatabaseConfigOrExit();
const db = openDatabase(config.database);
try {
  // Production schemas change only through `npm run migrate` (a command behind refuses, naming it).
  await prepareSchema(db, { migrateOnStart: config.migrateOnStart });
  const runs = new RescanRunRepository(db);
  if (command === "start") {
    const req = parseRescanRequest({ ...(values.tenant ? { tenantId: values.tenant } : {}), ...(values.from ? { from: values.from } : {}), ...(values.to ? { to: values.to } : {}) }, { now: new Date(), windowDays });
    if (req.tenantId && !(await new TenantRepository(db).byId(req.tenantId))) throw new NotFoundError("tenant", req.tenantId);
    const { run } = await runs.create({ trigger: "operator", via: "cli", signatureVersion: UNPINNED, tenantId: req.tenantId, verifiedFrom: req.verifiedFrom, verifiedTo: req.verifiedTo, startedBy: by });
    process.stdout.write(`${run.id}\n`);
    process.stderr.write(`rescan ${run.id} started for ${run.tenantId ?? "every tenant"}, verified from ${run.verifiedFrom.toISOString()}${run.verifiedTo ? ` to ${run.verifiedTo.toISOString()}` : ""}; the rescan workers take it up at their next tick\n`);
  } else if (command === "list") {
    const header = ["RUN", "STARTED", "BY", "COVERS", "STATUS", "DONE", "MATCHED", "FAILED", "REMAINING", "ETA"];
    const rows: string[][] = [];
    for (const run of await runs.recent(20)) {
      const p = await runs.progress(run);
      const done = p.counts.clean + p.counts.quarantined + p.counts.skipped + p.counts.failed;
      rows.push([run.id, run.startedAt.toISOString(), run.trigger === "signatures" ? "signatures" : (run.startedBy ?? "-"), `${run.tenantId ?? "all"} ${run.verifiedFrom.toISOString().slice(0, 10)}..${run.verifiedTo?.toISOString().slice(0, 10) ?? ""}`, run.status, String(done), String(p.counts.quarantined), String(p.counts.failed), String(p.remaining), p.eta?.toISOString() ?? "-"]);
    }
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [header, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
  } else {
    const id = positionals[1] ?? fail("cancel needs a run id (see list)");
    if (!(await runs.get(id))) throw new NotFoundError("rescan", id);
    const cancelled = await runs.cancel(id, { actorId: by });
    process.stderr.write(cancelled ? `rescan ${id} cancelled\n` : `rescan ${id} was not running\n`);
  }
} catch (err) {
  process.stderr.write(err instanceof IntakeError ? `${err.code}: ${err.message}\n` : `${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
