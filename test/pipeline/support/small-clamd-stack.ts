import { startSmallClamd, type SmallClamd, type SmallClamdLimits } from "../../support/small-clamd.ts";
import { startPipelineStack, type PipelineStack } from "./stack.ts";

const MiB = 1024 * 1024;

/** The limits the container survey measured clamd with (infra/clamd/README.md). */
export const SURVEY_LIMITS: SmallClamdLimits = { maxFileSize: MiB, maxScanSize: 4 * MiB, maxFiles: 8, maxRecursion: 4 };

/** The whole pipeline on fauxqs and SQLite, scanning with a clamd of its own at `limits`. */
export async function startStackOnSmallClamd(limits: SmallClamdLimits = SURVEY_LIMITS): Promise<{ clamd: SmallClamd; s: PipelineStack; close(): Promise<void> }> {
  const clamd = await startSmallClamd(limits);
  const s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", env: clamd.env });
  return {
    clamd,
    s,
    close: async () => {
      await s.close();
      clamd.close();
    },
  };
}
