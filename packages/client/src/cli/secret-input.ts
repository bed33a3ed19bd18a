import { createInterface } from "node:readline/promises";
import { UsageError } from "./exit-codes.ts";

/**
 * How the CLI reads what must not be a command-line argument (which any user sees in `ps`):
 * a password from standard input (--password-stdin, one line), or typed at a terminal with
 * the echo off. Nothing here is ever written back out.
 */
export async function readSecretFromStdin(stdin: NodeJS.ReadStream, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(typeof c === "string" ? Buffer.from(c) : (c as Buffer));
  // One line: the trailing newline of `echo` or a heredoc is not part of the password.
  const text = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (/[\r\n]/.test(text)) throw new UsageError(`--password-stdin reads one line; the input has several`);
  if (!text) throw new UsageError(`--password-stdin: standard input held no ${what}`);
  return text;
}

/** A line typed at the terminal, shown as typed (an email address). */
export async function askLine(stdin: NodeJS.ReadStream, prompt: NodeJS.WriteStream, question: string): Promise<string> {
  const rl = createInterface({ input: stdin, output: prompt, terminal: true });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

/**
 * A password typed at the terminal with the echo off: the terminal in raw mode, each key
 * read here (backspace edits, Enter ends, Ctrl-C or Ctrl-D gives up).
 */
export function askHidden(stdin: NodeJS.ReadStream, prompt: NodeJS.WriteStream, question: string): Promise<string> {
  if (!stdin.isTTY) throw new UsageError("no terminal to ask for the password on: pipe it in with --password-stdin");
  // The echo goes off before the prompt shows: what is typed as soon as it appears (or typed
  // ahead) must not be echoed by a terminal still in its cooked mode.
  const wasRaw = stdin.isRaw;
  stdin.setRawMode(true);
  prompt.write(question);
  return new Promise((resolve, reject) => {
    let typed = "";
    const done = (err?: Error) => {
      stdin.off("data", onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
      prompt.write("\n");
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of String(chunk)) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003" || ch === "\u0004") return done(Object.assign(new Error("interrupted"), { name: "AbortError" }));
        if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
        else if (ch >= " ") typed += ch;
      }
    };
    stdin.setEncoding("utf8");
    stdin.on("data", onData);
    stdin.resume();
  });
}
