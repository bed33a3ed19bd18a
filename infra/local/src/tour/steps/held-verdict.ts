import { utimesSync } from "node:fs";
import { bytesSource, IntakeApiError } from "@intake/client/node";
import { testDatabaseDate } from "@intake/scanner";
import { say, see, TourFailure, until } from "../evidence.ts";
import { reloadAndWait, testDatabaseFiles } from "../signatures.ts";
import { restoreDates } from "../undo.ts";
import { download, sha256, short, untilStatus, type TourContext, type TourStep } from "../step.ts";

/**
 * Stale signatures hold a clean verdict (issue 12 §5): the generated test database is made
 * older than SIGNATURE_MAX_AGE_HOURS the way the tests do it (its files' dates are its date:
 * clamd's VERSION names none for it), a clean upload waits as `held` with nothing promoted,
 * /readyz flags it, and once the dates are put back and clamd reloaded it proceeds by itself
 * to verified.
 */
export const heldVerdict: TourStep = {
  name: "held",
  title: "A held verdict: signatures made stale, a clean upload held, then fresh signatures and the upload proceeds",
  async run(ctx: TourContext) {
    const ready = await ctx.stack.readiness();
    const sig = ready.pipeline?.signatures;
    see(sig, "/readyz shows no pipeline facts");
    if (sig.dateSource !== "test_database_files") {
      throw new TourFailure(`clamd loads a database dated by clamd itself (${sig.version ?? "no version"}, ${sig.date ?? "no date"}): the tour can age only the generated test database (infra/clamd/up.sh with CLAMD_DATABASE=test)`);
    }
    const dataDir = ctx.stack.settings.dataDir;
    const files = testDatabaseFiles(ctx.stack.settings.testDatabaseDir);
    see(files.length > 0, `no test database files in ${ctx.stack.settings.testDatabaseDir}`);
    const ageHours = sig.maxAgeHours + 24;

    const change = ctx.undo.record({ kind: "database-dates", files });
    try {
      const was = testDatabaseDate(dataDir);
      await reloadAndWait(ctx.stack, ctx.signal, "the aged database", () => {
        const at = (Date.now() - ageHours * 3_600_000) / 1000;
        for (const f of files) utimesSync(f.path, at, at);
        say.line(`dated the test database's ${files.length} files ${ageHours} hours back (SIGNATURE_MAX_AGE_HOURS is ${sig.maxAgeHours}): its date ${was?.toISOString()} -> ${testDatabaseDate(dataDir)?.toISOString()}`);
      });
      const stale = await until("/readyz to call the signatures stale", async () => {
        const r = await ctx.stack.readiness();
        return r.pipeline?.signatures.stale ? r.pipeline : null;
      }, { timeoutMs: 15_000, signal: ctx.signal });
      say.seen(`/readyz: signatures ${stale.signatures.ageHours} hours old, stale; flags ${stale.flags.map((f) => f.code).join(", ")}`);

      const bytes = Buffer.from(`Travel expenses, ${ctx.nonce}.\nNothing unusual.\n`);
      const { upload } = await ctx.stack.client.upload(bytesSource(bytes), { filename: "tour-expenses.txt", contentType: "text/plain", signal: ctx.signal });
      const held = await untilStatus(ctx, upload.id, ["held", "verified", "quarantined"], 90_000);
      see(held.status === "held", `upload ${upload.id} was ${held.status} with stale signatures, not held: this stack's workers do not hold (infra/bin/dev starts them with HOLD_ON_STALE_SIGNATURES=true)`);
      see(held.result.verdict === null, `the held upload ${upload.id} has a verdict (${held.result.verdict})`);
      say.seen(`upload ${upload.id} held: ${held.result.reasonDetail}`);
      const flagged = await until("/readyz to flag verdicts_held", async () => {
        const r = await ctx.stack.readiness();
        return r.pipeline?.flags.some((f) => f.code === "verdicts_held") && (r.pipeline.held?.count ?? 0) > 0 ? r.pipeline : null;
      }, { timeoutMs: 15_000, signal: ctx.signal });
      say.seen(`/readyz: held ${flagged.held!.count}, flag verdicts_held: ${flagged.flags.find((f) => f.code === "verdicts_held")!.message}`);
      const refused = await ctx.stack.client.downloadUrl(upload.id).then(() => null, (err: unknown) => err);
      see(refused instanceof IntakeApiError, `the held upload ${upload.id} can be downloaded`);
      say.seen(`its download is refused meanwhile: ${refused.status} ${refused.code}`);

      say.line("fresh signatures: the database's dates put back, and clamd reloaded");
      await reloadAndWait(ctx.stack, ctx.signal, "the fresh database", () => {
        restoreDates(files);
        ctx.undo.forget(change);
      });
      const verdict = await ctx.stack.client.waitForVerdict(upload.id, { timeoutMs: 90_000, signal: ctx.signal });
      see(verdict.status === "verified", `the held upload ${upload.id} ended ${verdict.status} (${verdict.reason ?? ""}) after fresh signatures loaded, not verified`);
      const served = await download(ctx, upload.id);
      see(served.equals(bytes), `the download of ${upload.id} is not the uploaded bytes`);
      say.seen(`upload ${upload.id} proceeded by itself: verified, downloaded ${served.length} bytes, sha256 ${short(sha256(served))} as uploaded`);
      const after = await until("/readyz to show the signatures fresh again", async () => {
        const r = await ctx.stack.readiness();
        return r.pipeline && !r.pipeline.signatures.stale ? r.pipeline : null;
      }, { timeoutMs: 15_000, signal: ctx.signal });
      say.seen(`/readyz: signatures ${after.signatures.ageHours} hours old, not stale; held uploads now ${after.held?.count ?? "unknown"}`);
    } finally {
      const done = await ctx.undo.undo(change);
      if (done) say.cleanup(done);
    }
  },
};
