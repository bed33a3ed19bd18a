/**
 * npm run tour [-- photo rule rescan held]: a guided tour of issue 12 against the running dev
 * stack (bash infra/bin/dev in another terminal), each step printing what it changes and the
 * evidence it reads back through the SDK, the admin API and `npm run signatures`:
 *
 *   1. photo   a tenant policy that strips image metadata, a JPEG with GPS and a serial
 *   2. rule    a YARA rule dropped into the rules directory quarantines a matching upload
 *   3. rescan  a clean file verified, then a rule matching it: the rescan quarantines it
 *   4. held    signatures made stale hold a clean upload until fresh ones load
 *
 * Every step puts back what it changed (policy, rule files, the database's dates), also when
 * it fails or is interrupted; a tour killed outright is put back by the next run. Exit codes:
 * 0 every step showed its evidence, 1 a step did not (the message says which evidence), 2 the
 * dev stack is not there or not as the tour needs it (nothing changed), 130 interrupted.
 */
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { DevStack, devStackSettings } from "./dev-stack.ts";
import { say, TourFailure, TourSetupError, until } from "./evidence.ts";
import { reloadAndWait, tourRuleFiles } from "./signatures.ts";
import type { TourContext, TourStep } from "./step.ts";
import { customRule } from "./steps/custom-rule.ts";
import { heldVerdict } from "./steps/held-verdict.ts";
import { rescanCatch } from "./steps/rescan-catch.ts";
import { strippedPhoto } from "./steps/stripped-photo.ts";
import { restoreDates, UndoJournal } from "./undo.ts";

const STEPS: TourStep[] = [strippedPhoto, customRule, rescanCatch, heldVerdict];

async function preflight(stack: DevStack): Promise<void> {
  const { apiUrl } = stack.settings;
  const up = await fetch(`${apiUrl}/healthz`).then((r) => r.ok, () => false);
  if (!up) throw new TourSetupError(`the dev stack does not answer at ${apiUrl}: start it in another terminal with bash infra/bin/dev (and give the tour the same PORT and DATA_DIR)`);
  await stack.client.list({ limit: 1 }).catch((err: Error) => {
    throw new TourSetupError(`the API at ${apiUrl} refuses the dev key (${err.message}): is it the stack whose DATA_DIR is ${stack.settings.dataDir}?`);
  });
  await stack.admin().catch((err: Error) => {
    throw new TourSetupError(`the dev admin ${stack.settings.admin.email} cannot sign in (${err.message})`);
  });
  // infra/bin/dev says the stack is running once the API takes the key: the worker may still
  // be starting (migrations, clamd's limits probe) for a few seconds.
  await until("the worker's metrics", () => stack.signatureChangesSeen().then(() => true), { timeoutMs: 30_000, intervalMs: 500 }).catch((err: Error) => {
    throw new TourSetupError(`the worker's metrics at ${stack.settings.metricsUrl} are not readable (${err.message}): the tour watches intake_signature_version_changes_total there (give it the stack's WORKER_METRICS_PORT)`);
  });
}

/** After what an earlier tour left was put back: the pipeline must be able to verify a clean file. */
async function readyForSteps(stack: DevStack): Promise<void> {
  const ready = await stack.readiness();
  if (ready.status !== "ready") throw new TourSetupError(`/readyz says ${ready.status}: ${JSON.stringify((ready as { checks?: unknown }).checks)}`);
  const sig = ready.pipeline?.signatures;
  if (sig?.stale) throw new TourSetupError(`clamd's signatures are already stale (${sig.ageHours ?? "unknown"} hours old, at most ${sig.maxAgeHours}): clean uploads are held. Restart the dev stack (infra/clamd/up.sh rewrites the test database) or update the official one (freshclam).`);
}

async function main(args: string[]): Promise<number> {
  const unknown = args.filter((a) => !STEPS.some((s) => s.name === a));
  if (unknown.length > 0) {
    console.error(`unknown step ${unknown.join(", ")}; usage: npm run tour [-- ${STEPS.map((s) => s.name).join(" ")}]`);
    return 2;
  }
  const chosen = args.length ? STEPS.filter((s) => args.includes(s.name)) : STEPS;

  // First Ctrl-C: the step stops and puts back what it changed. Second: cleanup stops too.
  const stop = new AbortController();
  const stopCleanup = new AbortController();
  const onSignal = () => (stop.signal.aborted ? stopCleanup.abort(new Error("interrupted twice")) : stop.abort(new Error("interrupted")));
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let stack: DevStack;
  try {
    stack = new DevStack(devStackSettings(process.env));
  } catch (err) {
    console.error(`tour: ${(err as Error).message}`);
    return 2;
  }
  const s = stack.settings;
  say.raw(`Intake tour against the dev stack at ${s.apiUrl} (data in ${s.dataDir}, clamd ${s.clamd.host}:${s.clamd.port}, rules in ${s.rulesDir})`);

  const undo = new UndoJournal(s.dataDir, {
    "tenant-policy": async (c) => {
      const admin = await stack.admin();
      const now = await admin.tenantPolicy(c.tenantId);
      const back = await admin.setTenantPolicy(c.tenantId, c.policy, { version: now.version });
      return `policy of ${c.tenantId} restored (stripImageMetadata ${String(back.inForce.stripImageMetadata)}, version ${back.version})`;
    },
    "rule-files": async (c) => {
      // Reloaded even when the files are gone already: a reload that failed after they were
      // removed (an operator's malformed file beside them) leaves clamd with the tour's rule.
      const present = c.paths.filter((p) => existsSync(p));
      await reloadAndWait(stack, stopCleanup.signal, "the rule set without the tour's rule", () => {
        for (const p of present) rmSync(p);
      });
      return `${present.length ? `removed ${present.join(", ")}` : "the tour's rule files are gone"} and clamd reloaded without them`;
    },
    "database-dates": async (c) => {
      await reloadAndWait(stack, stopCleanup.signal, "the database with its dates put back", () => restoreDates(c.files));
      return `the test database's dates put back (${c.files.length} files) and clamd reloaded`;
    },
  });

  try {
    await preflight(stack);
    // What an earlier tour could not put back (killed outright), put back first.
    for (const done of await undo.replayLeftovers()) say.line(`left by an earlier tour, put back: ${done}`);
    const strays = tourRuleFiles(s.rulesDir);
    if (strays.length > 0) {
      const change = undo.record({ kind: "rule-files", paths: strays });
      say.line(`left by an earlier tour, put back: ${await undo.undo(change)}`);
    }
    await readyForSteps(stack);
  } catch (err) {
    await stack.close();
    console.error(`tour: ${(err as Error).message}`);
    return err instanceof TourSetupError ? 2 : 1;
  }

  const ctx: TourContext = { stack, undo, signal: stop.signal, nonce: randomBytes(4).toString("hex") };
  const results: { step: TourStep; error?: Error }[] = [];
  for (const [i, step] of chosen.entries()) {
    if (stop.signal.aborted) break;
    say.step(i + 1, step.title);
    try {
      await step.run(ctx);
      say.raw("   PASS");
      results.push({ step });
    } catch (err) {
      const e = err as Error;
      say.raw(stop.signal.aborted ? "   stopped: interrupted" : `   FAIL: ${e instanceof TourFailure ? e.message : `${e.name}: ${e.message}`}`);
      results.push({ step, error: e });
    }
  }
  await stack.close();

  if (stop.signal.aborted) {
    say.raw("\ninterrupted: what the tour changed was put back");
    return 130;
  }
  const failed = results.filter((r) => r.error);
  say.raw(`\n${results.length - failed.length} of ${results.length} steps showed their evidence${failed.length ? `; failed: ${failed.map((r) => r.step.name).join(", ")}` : ""}.`);
  return failed.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`tour: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
