import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { chmod, lstat, mkdir, open, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { AdminPrincipalView, AdminSession } from "../admin-client.ts";
import { UsageError } from "./exit-codes.ts";

/**
 * Where `intake login` keeps the admin session between commands: one JSON file, mode 0600
 * in a 0700 directory, under $XDG_CONFIG_HOME/intake (else ~/.config/intake). It holds the
 * session cookie's token, which is as good as the admin's password until the session ends,
 * so it is written whole or not at all (temporary file, then rename) and refused when other
 * users could read it, as ssh refuses a private key with loose permissions.
 */
export interface SavedSession extends AdminSession {
  /** The API the session belongs to: its cookie is never sent anywhere else. */
  apiUrl: string;
  admin: AdminPrincipalView;
}

export function sessionFilePath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith("/") ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), ".config");
  return join(base, "intake", "admin-session.json");
}

/**
 * The session's directory, made 0700 when missing, and refused (as ssh refuses a .ssh
 * directory others can write to) when it is a symlink, another user's, or writable by
 * group or others: whoever can write there can swap the file between our checks and our
 * read, or plant one of their own (their API URL, their cookie) for the next command.
 * `intake login` calls it before it asks the API for a session, so a refusal starts none.
 */
export async function checkSessionDirectory(file: string): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new UsageError(`${dir} is not a directory (a symlink?); delete it and run \`intake login\` again`);
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) throw new UsageError(`${dir} belongs to another user; delete it and run \`intake login\` again`);
  if ((st.mode & 0o022) !== 0) {
    throw new UsageError(`other users can change ${dir} (mode ${(st.mode & 0o777).toString(8)}), and with it the session file: make it private (chmod 700 ${dir}) and run \`intake login\` again`);
  }
}

export async function saveSession(file: string, s: SavedSession): Promise<void> {
  await checkSessionDirectory(file);
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  // "wx": never through a file (or a symlink) someone put there first; 0600 from creation.
  const handle = await open(tmp, "wx", 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(s, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The saved session, or a usage error that says to sign in (none, unreadable, too open). */
export async function loadSession(file: string): Promise<SavedSession> {
  const st = await lstat(file).catch(() => undefined);
  if (!st) throw new UsageError("not signed in: run `intake login` first");
  await checkSessionDirectory(file);
  // Opened without following a symlink and checked on the open descriptor (fstat), not on
  // the path: a file swapped for a link between a check and the read cannot be read.
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ELOOP") throw new UsageError(`${file} is not a regular file; delete it and run \`intake login\` again`);
    throw new UsageError(`${file} cannot be read (${err.code ?? err.message}); delete it and run \`intake login\` again`);
  });
  let text: string;
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw new UsageError(`${file} is not a regular file; delete it and run \`intake login\` again`);
    if (typeof process.getuid === "function" && opened.uid !== process.getuid()) throw new UsageError(`${file} belongs to another user; delete it and run \`intake login\` again`);
    if ((opened.mode & 0o077) !== 0) {
      throw new UsageError(`${file} can be read by other users (mode ${(opened.mode & 0o777).toString(8)}): the session in it may be known to others; delete it and run \`intake login\` again`);
    }
    text = await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
  let parsed: Partial<SavedSession>;
  try {
    parsed = JSON.parse(text) as Partial<SavedSession>;
  } catch {
    throw new UsageError(`${file} is not a session this CLI wrote; delete it and run \`intake login\` again`);
  }
  if (typeof parsed.apiUrl !== "string" || typeof parsed.token !== "string" || typeof parsed.csrfToken !== "string" || !parsed.admin) {
    throw new UsageError(`${file} is not a session this CLI wrote; delete it and run \`intake login\` again`);
  }
  return parsed as SavedSession;
}

export async function removeSession(file: string): Promise<void> {
  await rm(file, { force: true });
}
