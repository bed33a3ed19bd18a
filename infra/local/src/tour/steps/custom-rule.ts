import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { bytesSource } from "@intake/client/node";
import { say, see } from "../evidence.ts";
import { reloadAndWait, yaraRule } from "../signatures.ts";
import type { TourContext, TourStep } from "../step.ts";

/**
 * An operator's YARA rule, dropped into the rules directory and loaded with
 * `npm run signatures -- reload`, quarantines a matching upload under the rule's name
 * (issue 12 §3).
 */
export const customRule: TourStep = {
  name: "rule",
  title: "A custom-rule catch: a YARA rule dropped into the rules directory, reloaded, and an upload it matches",
  async run(ctx: TourContext) {
    const { rulesDir } = ctx.stack.settings;
    const rule = `Intake_Tour_Custom_${ctx.nonce}`;
    const marker = `INTAKE-TOUR-CUSTOM-${ctx.nonce}`;
    const file = join(rulesDir, "intake-tour-custom.yar");
    const change = ctx.undo.record({ kind: "rule-files", paths: [file] });
    try {
      const out = await reloadAndWait(ctx.stack, ctx.signal, `the rule set with ${rule}`, () => {
        mkdirSync(rulesDir, { recursive: true });
        writeFileSync(file, yaraRule(rule, marker));
        say.line(`wrote ${file}: rule ${rule} matches the text "${marker}"`);
      });
      see(out.includes("intake-tour-custom.yar"), "the reload does not name intake-tour-custom.yar among the rules it loaded");

      const bytes = Buffer.from(`Quarterly notes.\n${marker}\nEnd of notes.\n`);
      const { upload } = await ctx.stack.client.upload(bytesSource(bytes), { filename: "tour-notes.txt", contentType: "text/plain", signal: ctx.signal });
      const verdict = await ctx.stack.client.waitForVerdict(upload.id, { timeoutMs: 90_000, signal: ctx.signal });
      const r = verdict.upload.result;
      see(verdict.status === "quarantined", `upload ${upload.id} carrying the rule's text was ${verdict.status}, not quarantined`);
      see(r.reason === "malware" && r.signature?.startsWith(`YARA.${rule}`), `upload ${upload.id} was quarantined as ${r.reason} / ${r.signature}, not malware / YARA.${rule}`);
      say.seen(`upload ${upload.id} quarantined: reason ${r.reason}, signature ${r.signature}`);
    } finally {
      const done = await ctx.undo.undo(change);
      if (done) say.cleanup(done);
    }
  },
};
