import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadedSignatures, type LoadedSignatures } from "@intake/testkit";

/**
 * The project's clamd, as the setup starts it (infra/clamd/up.sh: DATA_DIR defaults to
 * <repo>/.data, port 3310): what every whole-stack test scans with.
 */
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const PROJECT_CLAMD = {
  host: "127.0.0.1",
  port: Number(process.env.CLAMD_PORT ?? 3310),
  dataDir: process.env.DATA_DIR ?? join(REPO, ".data"),
};

/** The signatures that clamd loaded, to expect the names it reports (not literals). */
export function projectSignatures(): LoadedSignatures {
  return loadedSignatures(PROJECT_CLAMD.dataDir);
}
