import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * ZIPs written by Info-ZIP's `zip` (what users' tools produce, and the only way here to an
 * encrypted archive). The setup installs it (infra/bin/provision.sh,
 * intake_ensure_test_tools); a test never does.
 */
export function zipWithCli(files: Record<string, Buffer>, opts: { password?: string; level?: number } = {}): Buffer {
  try {
    execFileSync("zip", ["-v"], { stdio: "ignore" });
  } catch {
    throw new Error("the `zip` CLI is missing: run the tests through infra/bin/test, whose setup installs it (infra/bin/provision.sh)");
  }
  const dir = mkdtempSync(join(tmpdir(), "intake-zip-"));
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const out = join(dir, "out.zip");
    const args = ["-q", "-j", `-${opts.level ?? 6}`];
    if (opts.password) args.push("-P", opts.password);
    execFileSync("zip", [...args, out, ...Object.keys(files).map((n) => join(dir, n))]);
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
