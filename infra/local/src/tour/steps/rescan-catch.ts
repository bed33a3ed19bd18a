import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bytesSource, IntakeApiError } from "@intake/client/node";
import { say, see, until } from "../evidence.ts";
import { reloadAndWait, yaraRule } from "../signatures.ts";
import { untilStatus, type TourContext, type TourStep } from "../step.ts";

/**
 * A file verified today, matched by a rule added afterwards: the signature version changes,
 * the rescan role starts a run by itself, and the file moves from verified/ to quarantine/
 * as malware_on_rescan, its download refused from then on (issue 12 §6).
 */
export const rescanCatch: TourStep = {
  name: "rescan",
  title: "A rescan catch: a clean file verified, then a rule that matches it, and the rescan the new signatures start",
  async run(ctx: TourContext) {
    const rule = `Intake_Tour_Rescan_${ctx.nonce}`;
    const marker = `INTAKE-TOUR-RESCAN-${ctx.nonce}`;
    const bytes = Buffer.from(`Minutes of the board meeting.\n${marker}\nNothing else to report.\n`);
    const { upload } = await ctx.stack.client.upload(bytesSource(bytes), { filename: "tour-minutes.txt", contentType: "text/plain", signal: ctx.signal });
    const first = await ctx.stack.client.waitForVerdict(upload.id, { timeoutMs: 90_000, signal: ctx.signal });
    see(first.status === "verified", `the clean file ${upload.id} was ${first.status} (${first.reason ?? ""}), not verified`);
    await ctx.stack.client.downloadUrl(upload.id);
    say.seen(`upload ${upload.id} verified with today's signatures; its download is offered`);

    const file = join(ctx.stack.settings.rulesDir, "intake-tour-rescan.yar");
    const change = ctx.undo.record({ kind: "rule-files", paths: [file] });
    try {
      await reloadAndWait(ctx.stack, ctx.signal, `the rule set with ${rule}`, () => {
        mkdirSync(ctx.stack.settings.rulesDir, { recursive: true });
        writeFileSync(file, yaraRule(rule, marker));
        say.line(`wrote ${file}: rule ${rule} matches a line of that file`);
      });

      const caught = await untilStatus(ctx, upload.id, ["quarantined"], 120_000);
      const r = caught.result;
      see(r.reason === "malware_on_rescan", `upload ${upload.id} was quarantined as ${r.reason}, not malware_on_rescan`);
      see(r.signature?.startsWith(`YARA.${rule}`), `upload ${upload.id} names signature ${r.signature}, not YARA.${rule}`);
      say.seen(`upload ${upload.id} quarantined by the rescan: reason ${r.reason}, signature ${r.signature}`);

      // The compliance view of the catch: the quarantine review's record and its audit trail.
      const admin = await ctx.stack.admin();
      const record = await until("the upload in the quarantine review as malware_on_rescan", async () => (await admin.listQuarantine({ reason: "malware_on_rescan", limit: 20 })).items.find((q) => q.id === upload.id), { timeoutMs: 15_000, intervalMs: 500, signal: ctx.signal });
      const trail = (record.timeline as { action: string; actor: string }[]).map((e) => `${e.action} (${e.actor})`);
      see(trail.at(-1) === "upload.quarantined (rescan)" && trail.includes("upload.quarantining (rescan)"), `the audit trail of ${upload.id} does not end in the rescan's move: ${trail.join(", ")}`);
      say.seen(`quarantine review: "${record.reasonDetail}"; audit trail ... ${trail.slice(-3).join(" -> ")}`);
      // Which run caught it: the one of the new rule set, or one still catching up on the
      // verdicts made while it began (each reload is a signature version and starts a run).
      const runs = await until("a rescan run started by a signature change that matched", async () => {
        const matched = (await admin.rescans()).filter((x) => x.trigger === "signatures" && x.counts.matched > 0);
        return matched.length ? matched : null;
      }, { timeoutMs: 15_000, intervalMs: 500, signal: ctx.signal });
      say.seen(`GET /v1/admin/rescans: run ${runs[0]!.id} (started by a signature change at ${runs[0]!.startedAt}, ${runs[0]!.status}): ${runs[0]!.counts.done} done, ${runs[0]!.counts.matched} matched, ${runs[0]!.remaining} remaining`);

      const refused = await ctx.stack.client.downloadUrl(upload.id).then(
        () => null,
        (err: unknown) => err,
      );
      see(refused instanceof IntakeApiError, `the download of ${upload.id} is still offered after the rescan quarantined it`);
      say.seen(`GET /v1/uploads/${upload.id}/download refused: ${refused.status} ${refused.code}`);
    } finally {
      const done = await ctx.undo.undo(change);
      if (done) say.cleanup(done);
    }
  },
};
