import type { Command } from "commander";
import { IntakeAdminClient } from "../admin-client.ts";
import { IntakeApiError } from "../errors.ts";
import { classify, UsageError, type ExitCode } from "./exit-codes.ts";
import type { CliIo } from "./program.ts";
import { loadSession, sessionFilePath, type SavedSession } from "./session-file.ts";

/**
 * What every admin command shares: the saved session (from `intake login`), the API it
 * belongs to, and how a failure is told: the API's code and message, a hint to sign in again
 * when the session is gone, and never the session's token or CSRF token.
 */
export interface AdminCli {
  io: CliIo;
  sessionFile: string;
  /** The saved session and a client bound to its API; a usage error if there is none. */
  signedIn(cmd: Command): Promise<{ client: IntakeAdminClient; saved: SavedSession }>;
  /** Wraps a command's action: its outcome or its failure becomes the exit code. */
  run<A extends unknown[]>(fn: (...args: A) => Promise<ExitCode>, o?: { signingIn?: boolean }): (...args: A) => Promise<void>;
  json(v: unknown): void;
  line(s: string): void;
  /** Remembered so that a failure's message can be scrubbed of them. */
  secrets: Set<string>;
}

export function apiUrlOf(raw: string | undefined): string {
  if (!raw) throw new UsageError("missing the API URL (--api-url or INTAKE_API_URL)");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--api-url ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError("--api-url must be an http(s) URL");
  if (url.username || url.password) throw new UsageError("--api-url must not carry a user name or password");
  url.search = "";
  url.hash = "";
  return url.href.replace(/\/+$/, "");
}

/** 401: the session expired, went idle, was signed out or its user disabled. */
const SESSION_GONE = "your admin session has ended (expired, idle, signed out or revoked): run `intake login` again";

export function adminCli(io: CliIo, setExit: (code: ExitCode) => void): AdminCli {
  const sessionFile = sessionFilePath(io.env);
  const secrets = new Set<string>();
  const scrub = (text: string) => [...secrets].filter((s) => s.length >= 8).reduce((t, s) => t.split(s).join("[secret]"), text);
  return {
    io,
    sessionFile,
    secrets,
    async signedIn(cmd) {
      const saved = await loadSession(sessionFile);
      secrets.add(saved.token).add(saved.csrfToken);
      const asked = cmd.optsWithGlobals<{ apiUrl?: string }>().apiUrl;
      // The cookie belongs to the API that issued it: another URL (a typo, a hostile
      // INTAKE_API_URL) never receives it.
      if (asked && apiUrlOf(asked) !== apiUrlOf(saved.apiUrl)) {
        throw new UsageError(`the saved admin session is for ${saved.apiUrl}, not ${apiUrlOf(asked)}: run \`intake login\` with that --api-url first`);
      }
      return { client: new IntakeAdminClient({ baseUrl: saved.apiUrl, session: saved }), saved };
    },
    run(fn, o = {}) {
      return async (...args) => {
        try {
          setExit(await fn(...args));
        } catch (err) {
          const f = classify(err);
          const code = err instanceof IntakeApiError ? ` [${f.code}]` : "";
          const gone = !o.signingIn && err instanceof IntakeApiError && (err.status === 401 || err.code === "csrf_failed");
          io.stderr.write(`intake: ${scrub(f.message)}${code}${gone ? `\nintake: ${SESSION_GONE}` : ""}\n`);
          setExit(f.exit);
        }
      };
    },
    json: (v) => void io.stdout.write(`${JSON.stringify(v)}\n`),
    line: (s) => void io.stdout.write(`${s}\n`),
  };
}

/** Columns for plain output: each cell padded to its column's widest, no escape codes. */
export function table(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return "";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd()).join("\n") + "\n";
}

/** A tenant scope as shown: every tenant, or the list. */
export const scopeText = (ids: readonly string[] | null): string => (ids === null ? "all tenants" : ids.length ? ids.join(",") : "no tenant");
