import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { basename } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Command, InvalidArgumentError, Option } from "commander";
import { IntakeClient } from "../node.ts";
import { UPLOAD_STATUSES, type Upload, type UploadStatus } from "../types.ts";
import { addAdminCommands } from "./admin-commands.ts";
import { adminCli } from "./admin-runner.ts";
import { guessContentType } from "./content-type.ts";
import { classify, EXIT, UsageError, worst, type ExitCode } from "./exit-codes.ts";
import { bytes } from "./format.ts";
import { outputMode, putReporter, type FileResult } from "./output.ts";
import { addSessionCommands } from "./session-commands.ts";

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
  /** Where passwords are read from (--password-stdin, or the terminal); process.stdin if absent. */
  stdin?: NodeJS.ReadStream;
  /** Aborted on Ctrl-C: uploads in flight are aborted (DELETE) and the CLI exits 130. */
  signal: AbortSignal;
}

interface Globals {
  apiUrl?: string;
  apiKey?: string;
}

const positiveInt = (name: string, max = Number.MAX_SAFE_INTEGER) => (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${name} must be a whole number from 1 to ${max}.`);
  return n;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

const EXIT_HELP = `
Exit codes:
  0  all files verified (put --wait), or all uploaded (put without --wait); the command worked
  1  usage error (bad arguments, missing --api-url/--api-key, unreadable file)
  2  a file was quarantined, or the API or storage refused a request (4xx; for the admin
     commands also an ended admin session: run intake login again)
  3  transport or server error (network, 5xx, timeout)

Environment:
  INTAKE_API_URL   the API's base URL (instead of --api-url)
  INTAKE_API_KEY   an application's API key (instead of --api-key, which other users can see in ps)
  XDG_CONFIG_HOME  where intake login keeps the admin session (intake/admin-session.json, mode 0600;
                   default ~/.config); login, logout, keys, admin, quarantine use it`;

/**
 * The `intake` command line. Every command resolves to an exit code; nothing here calls
 * process.exit, so main.ts and the tests decide what to do with it.
 */
export function buildProgram(io: CliIo, setExit: (code: ExitCode) => void): Command {
  const program = new Command("intake")
    .description("Upload files to Intake and follow them to a verdict; administer it with an admin's session (intake login).")
    .addOption(new Option("--api-url <url>", "the Intake API's base URL").env("INTAKE_API_URL"))
    .addOption(new Option("--api-key <key>", "an application's API key (ik_...)").env("INTAKE_API_KEY"))
    .addHelpText("after", EXIT_HELP)
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .exitOverride();

  const client = (cmd: Command): { client: IntakeClient; key: string } => {
    const g = cmd.optsWithGlobals<Globals>();
    const missing = [!g.apiUrl && "the API URL (--api-url or INTAKE_API_URL)", !g.apiKey && "the API key (--api-key or INTAKE_API_KEY)"].filter(Boolean);
    if (missing.length) throw new UsageError(`missing ${missing.join(" and ")}`);
    let url: URL;
    try {
      url = new URL(g.apiUrl!);
    } catch {
      throw new UsageError(`--api-url ${JSON.stringify(g.apiUrl)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError("--api-url must be an http(s) URL");
    return { client: new IntakeClient({ baseUrl: url.toString(), apiKey: g.apiKey! }), key: g.apiKey! };
  };

  /** Runs a command: its failure becomes a message on stderr and an exit code. The key never reaches output. */
  const run = <A extends unknown[]>(fn: (...args: A) => Promise<ExitCode>) => async (...args: A) => {
    const cmd = args.at(-1) as Command;
    const key = cmd.optsWithGlobals<Globals>().apiKey;
    try {
      setExit(await fn(...args));
    } catch (err) {
      const f = classify(err);
      io.stderr.write(`intake: ${redact(f.message, key)}\n`);
      setExit(f.exit);
    }
  };
  const json = (v: unknown) => void io.stdout.write(`${JSON.stringify(v)}\n`);

  program
    .command("put")
    .description("upload files (each as its own upload), optionally waiting for each verdict")
    .argument("<file...>", "files to upload")
    .option("-w, --wait", "wait for each file's verdict (verified or quarantined)")
    .option("--json", "one JSON object per file on stdout: {file, id, status, reason?, bytes, sha256?}")
    .option("-c, --concurrency <n>", "parts of one file in flight at once (multipart)", positiveInt("--concurrency", 32), 4)
    .option("-t, --type <mime>", "content type of every file (default: guessed from the extension)")
    .option("--timeout <seconds>", "give up waiting for a verdict after this long", positiveInt("--timeout", 86_400), 300)
    .action(
      run(async (files: string[], o: { wait?: boolean; json?: boolean; concurrency: number; type?: string; timeout: number }, cmd: Command) => {
        // Everything that can be checked before sending is checked first: a usage error uploads nothing.
        const plan: { file: string; size: number; contentType: string }[] = [];
        for (const file of files) {
          const st = await stat(file).catch(() => undefined);
          if (!st?.isFile()) throw new UsageError(`${file}: no such file`);
          const contentType = o.type ?? guessContentType(file);
          if (!contentType) throw new UsageError(`${file}: cannot guess its content type from the extension; pass --type`);
          plan.push({ file, size: st.size, contentType });
        }
        const { client: c } = client(cmd);
        const report = putReporter(outputMode(o, io.stdout), io.stdout);
        const one = async ({ file, size, contentType }: (typeof plan)[number]): Promise<ExitCode> => {
          report.start(file, size);
          let id: string | undefined;
          let sha256: string | undefined;
          try {
            const out = await c.upload(file, { filename: basename(file), contentType, concurrency: o.concurrency, signal: io.signal, onProgress: (p) => report.progress(file, p) });
            id = out.upload.id;
            sha256 = out.sha256;
            report.uploaded(file, id);
            if (!o.wait) {
              // "uploaded": the bytes are in and complete was accepted. The API's own status may
              // already be further along (the pipeline starts at once), so it is not reported here.
              report.done({ file, id, status: "uploaded", bytes: size, ...(sha256 ? { sha256 } : {}) });
              return EXIT.ok;
            }
            const v = await c.waitForVerdict(id, { timeoutMs: o.timeout * 1000, signal: io.signal });
            const hashed = v.upload.result.sha256 ?? sha256;
            report.done({ file, id, status: v.status, ...(v.reason ? { reason: v.reason } : {}), bytes: size, ...(hashed ? { sha256: hashed } : {}) });
            return v.status === "verified" ? EXIT.ok : EXIT.refused;
          } catch (err) {
            const f = classify(err);
            const status = f.exit === EXIT.refused ? "refused" : f.exit === EXIT.interrupted ? "interrupted" : "failed";
            report.done({ file, ...(id ? { id } : {}), status, reason: f.code, message: f.message, bytes: size });
            return f.exit;
          }
        };
        // A few files at a time, each with its own parts in parallel.
        const codes: ExitCode[] = [];
        let next = 0;
        await Promise.all(Array.from({ length: Math.min(3, plan.length) }, async () => {
          while (next < plan.length) codes.push(await one(plan[next++]!));
        }));
        report.close();
        return worst(codes);
      }),
    );

  program
    .command("status")
    .description("show an upload's status (and its verdict, once there is one)")
    .argument("<id>", "upload id")
    .option("--json", "the upload as JSON")
    .action(
      run(async (id: string, o: { json?: boolean }, cmd: Command) => {
        const u = await client(cmd).client.get(id, { signal: io.signal });
        if (o.json) json(u);
        else io.stdout.write(describe(u));
        return EXIT.ok;
      }),
    );

  program
    .command("get")
    .description("download a verified upload (checks its sha256 on the way)")
    .argument("<id>", "upload id")
    .option("-o, --output <file>", "write to this file (default: stdout)")
    .action(
      run(async (id: string, o: { output?: string }, cmd: Command) => {
        const c = client(cmd).client;
        const u = await c.get(id, { signal: io.signal });
        if (u.status !== "verified") {
          io.stderr.write(`intake: ${id} is ${u.status}${u.result.reason ? ` (${u.result.reason})` : ""}: only verified uploads can be downloaded\n`);
          return EXIT.refused;
        }
        const { url } = await c.downloadUrl(id, { signal: io.signal });
        // The presigned URL is a credential: errors name the upload, never the URL.
        const res = await fetch(url, { signal: io.signal }).catch((err: unknown) => {
          throw new Error(`storage unreachable while downloading ${id}`, { cause: err });
        });
        if (!res.ok || !res.body) {
          io.stderr.write(`intake: storage answered ${res.status} for ${id}\n`);
          return res.status >= 400 && res.status < 500 ? EXIT.refused : EXIT.transport;
        }
        const hash = createHash("sha256");
        let n = 0;
        const tap = new Transform({ transform: (chunk: Buffer, _e, cb) => (hash.update(chunk), (n += chunk.length), cb(null, chunk)) });
        const toFile = o.output !== undefined && o.output !== "-";
        const partial = `${o.output}.intake-partial`;
        try {
          await pipeline(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream), tap, toFile ? createWriteStream(partial) : io.stdout, { end: toFile });
        } catch (err) {
          if (toFile) await rm(partial, { force: true });
          throw err;
        }
        const got = hash.digest("hex");
        // What storage serves: the checked bytes, or the metadata-stripped copy made from them.
        const expectedSha256 = u.result.servedSha256 ?? u.result.sha256;
        const expectedSize = u.result.servedSize ?? u.result.storedSize ?? u.size;
        if ((expectedSha256 && got !== expectedSha256) || n !== expectedSize) {
          if (toFile) await rm(partial, { force: true });
          io.stderr.write(`intake: ${id}: the downloaded bytes do not match the verified upload (sha256 ${got}, ${n} bytes)\n`);
          return EXIT.transport;
        }
        if (toFile) {
          await rename(partial, o.output!);
          io.stderr.write(`${o.output}: ${bytes(n)}, sha256 ${got}\n`);
        }
        return EXIT.ok;
      }),
    );

  program
    .command("list")
    .description("list uploads, newest first")
    .addOption(new Option("--status <status>", "only uploads with this status").choices(UPLOAD_STATUSES))
    .option("--limit <n>", "at most this many", positiveInt("--limit", 100), 20)
    .option("--cursor <cursor>", "continue after a previous page (printed at its end)")
    .option("--json", "one JSON object per upload")
    .action(
      run(async (o: { status?: UploadStatus; limit: number; cursor?: string; json?: boolean }, cmd: Command) => {
        const page = await client(cmd).client.list({ limit: o.limit, ...(o.status ? { status: o.status } : {}), ...(o.cursor ? { cursor: o.cursor } : {}) }, { signal: io.signal });
        for (const u of page.items) {
          if (o.json) json(u);
          else io.stdout.write(`${u.id}  ${u.status.padEnd(11)}  ${sizeText(u).padStart(10)}  ${u.createdAt}  ${u.filename}\n`);
        }
        if (page.nextCursor) io.stderr.write(`more: intake list --cursor ${page.nextCursor}\n`);
        return EXIT.ok;
      }),
    );

  const sessions = program.command("sessions").description("upload sessions: short-lived tokens for browsers");
  sessions
    .command("create")
    .description("mint an upload session token (printed once; give it to one end user's browser)")
    .option("--expires-in <seconds>", "token lifetime", positiveInt("--expires-in"))
    .option("--max-files <n>", "uploads the token may create", positiveInt("--max-files"))
    .option("--max-bytes <n>", "total bytes the token may upload", positiveInt("--max-bytes"))
    .option("--type <mime>", "an allowed content type (repeat for several; default: the tenant's)", collect)
    .option("--json", "the session as JSON")
    .action(
      run(async (o: { expiresIn?: number; maxFiles?: number; maxBytes?: number; type?: string[]; json?: boolean }, cmd: Command) => {
        const minted = await client(cmd).client.createUploadSession(
          { ...(o.expiresIn ? { expiresIn: o.expiresIn } : {}), ...(o.maxFiles ? { maxFiles: o.maxFiles } : {}), ...(o.maxBytes ? { maxBytes: o.maxBytes } : {}), ...(o.type ? { allowedTypes: o.type } : {}) },
          { signal: io.signal },
        );
        if (o.json) json(minted);
        else {
          const s = minted.session;
          io.stdout.write(`${minted.token}\n`);
          io.stderr.write(`session ${s.id}: expires ${minted.expiresAt}, ${s.maxFiles} files, ${s.maxBytes === null ? "no byte limit" : bytes(s.maxBytes)}, types ${s.allowedTypes.join(", ")}\n`);
        }
        return EXIT.ok;
      }),
    );

  const admin = adminCli(io, setExit);
  addSessionCommands(program, admin);
  addAdminCommands(program, admin);

  return program;
}

/** The size, or for an upload whose size is learned on arrival and has not arrived, its limit. */
function sizeText(u: Upload): string {
  return u.size === null ? `≤ ${bytes(u.sizeLimit)}` : bytes(u.size);
}

function describe(u: Upload): string {
  const lines = [
    `id:        ${u.id}`,
    `status:    ${u.status}`,
    `file:      ${u.filename} (${u.contentType}, ${sizeText(u)})`,
    `created:   ${u.createdAt}`,
    ...(u.finishedAt ? [`finished:  ${u.finishedAt}`] : []),
    ...(u.result.detectedType ? [`detected:  ${u.result.detectedType}`] : []),
    ...(u.result.sha256 ? [`sha256:    ${u.result.sha256}`] : []),
    ...(u.result.reason ? [`reason:    ${u.result.reason}${u.result.reasonDetail ? ` (${u.result.reasonDetail})` : ""}`] : []),
    ...(u.result.signature ? [`signature: ${u.result.signature}`] : []),
  ];
  return `${lines.join("\n")}\n`;
}

/** An error message that happens to contain the key (an echoing proxy, a typo'd URL) never shows it. */
export function redact(text: string, key: string | undefined): string {
  return key && key.length >= 8 ? text.split(key).join("[api key]") : text;
}
