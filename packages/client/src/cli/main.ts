#!/usr/bin/env node
/**
 * `intake`: the command line of the Intake client (npm run intake -- --help). Exit codes:
 * 0 ok, 1 usage, 2 quarantined or refused, 3 transport or server error, 130 interrupted.
 */
import { CommanderError } from "commander";
import { buildProgram } from "./program.ts";
import { EXIT, type ExitCode } from "./exit-codes.ts";

const interrupt = new AbortController();
process.once("SIGINT", () => interrupt.abort(Object.assign(new Error("interrupted"), { name: "AbortError" })));

let code: ExitCode = EXIT.ok;
const program = buildProgram({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, signal: interrupt.signal }, (c) => (code = c));
try {
  await program.parseAsync(process.argv);
} catch (err) {
  // exitOverride: commander throws instead of exiting. Help and --version are not errors.
  if (!(err instanceof CommanderError)) throw err;
  code = err.code === "commander.helpDisplayed" || err.code === "commander.help" || err.code === "commander.version" ? EXIT.ok : EXIT.usage;
}
process.exitCode = interrupt.signal.aborted ? EXIT.interrupted : code;
