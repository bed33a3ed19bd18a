import type { Command } from "commander";
import { IntakeAdminClient } from "../admin-client.ts";
import { IntakeApiError } from "../errors.ts";
import { apiUrlOf, scopeText, type AdminCli } from "./admin-runner.ts";
import { EXIT, UsageError } from "./exit-codes.ts";
import { askHidden, askLine, readSecretFromStdin } from "./secret-input.ts";
import { checkSessionDirectory, loadSession, removeSession, saveSession } from "./session-file.ts";

/**
 * `intake login`, `logout` and `whoami`: an admin's password sign-in through the admin API
 * (POST /v1/admin/session), its session kept in a 0600 file (session-file.ts) for the admin
 * commands, and ended on the server by logout.
 */
export function addSessionCommands(program: Command, a: AdminCli): void {
  const { io } = a;
  const stdin = io.stdin ?? process.stdin;

  program
    .command("login")
    .description("sign in as an admin (email and password) and keep the session for the admin commands")
    .option("--email <email>", "the admin's email address (asked for on a terminal when absent)")
    .option("--password-stdin", "read the password from standard input (one line) instead of asking on the terminal")
    .option("--json", "the signed-in admin as JSON")
    .addHelpText("after", `\nThe password is never an argument (other users see arguments in ps). The session is saved\nin ${a.sessionFile} (mode 0600); \`intake logout\` ends it.\nAccounts that sign in through single sign-on (OIDC) have no password: use the admin pages.`)
    .action(
      a.run(
        async (o: { email?: string; passwordStdin?: boolean; json?: boolean }, cmd: Command) => {
          const apiUrl = apiUrlOf(cmd.optsWithGlobals<{ apiUrl?: string }>().apiUrl);
          // Before the API is asked: a directory the session could not be kept in safely starts no session.
          await checkSessionDirectory(a.sessionFile);
          const interactive = Boolean(stdin.isTTY) && !o.passwordStdin;
          let email = o.email?.trim();
          if (!email) {
            if (!interactive) throw new UsageError("--email is required when there is no terminal to ask on");
            email = await askLine(stdin, io.stderr, "Email: ");
          }
          if (!email) throw new UsageError("no email address given");
          const password = o.passwordStdin ? await readSecretFromStdin(stdin, "password") : await askHidden(stdin, io.stderr, `Password for ${email}: `);
          a.secrets.add(password);
          let signed: Awaited<ReturnType<typeof IntakeAdminClient.signIn>>;
          try {
            signed = await IntakeAdminClient.signIn(apiUrl, email, password, { signal: io.signal });
          } catch (err) {
            if (err instanceof IntakeApiError && err.code === "invalid_credentials" && err.status === 401 && err.details?.oidc) {
              throw new IntakeApiError(err.status, { code: err.code, message: `${err.message} (an account that signs in through single sign-on (OIDC) has no password and cannot use \`intake login\`: use ${apiUrl}/admin in a browser)` });
            }
            throw err;
          }
          a.secrets.add(signed.session.token).add(signed.session.csrfToken);
          // A session saved before (another account, another API) is ended, not just forgotten.
          const previous = await loadSession(a.sessionFile).catch(() => undefined);
          if (previous) await new IntakeAdminClient({ baseUrl: previous.apiUrl, session: previous }).signOut({ signal: io.signal }).catch(() => undefined);
          await saveSession(a.sessionFile, { apiUrl, ...signed.session, admin: signed.admin });
          if (o.json) a.json({ admin: signed.admin, apiUrl, expiresAt: signed.session.expiresAt, sessionFile: a.sessionFile });
          else a.line(`signed in as ${signed.admin.email} (${signed.admin.role}, ${scopeText(signed.admin.tenantIds)}) at ${apiUrl}; the session lasts until ${signed.session.expiresAt} unless idle`);
          return EXIT.ok;
        },
        { signingIn: true },
      ),
    );

  program
    .command("logout")
    .description("end the admin session on the server and delete its file")
    .option("--json", "the outcome as JSON")
    .action(
      a.run(async (o: { json?: boolean }) => {
        const saved = await loadSession(a.sessionFile).catch((err: unknown) => {
          if (err instanceof UsageError && /not signed in/.test(err.message)) return undefined;
          throw err;
        });
        if (!saved) {
          if (o.json) a.json({ signedOut: false, reason: "not_signed_in" });
          else io.stderr.write("intake: not signed in; nothing to do\n");
          return EXIT.ok;
        }
        a.secrets.add(saved.token).add(saved.csrfToken);
        let already = false;
        try {
          await new IntakeAdminClient({ baseUrl: saved.apiUrl, session: saved }).signOut({ signal: io.signal });
        } catch (err) {
          // Already over on the server (expired, revoked): all that is left is the file.
          if (!(err instanceof IntakeApiError && err.status === 401)) {
            io.stderr.write(`intake: the session could not be ended on the server, so ${a.sessionFile} is kept (run \`intake logout\` again, or delete it and let the session expire)\n`);
            throw err;
          }
          already = true;
        }
        await removeSession(a.sessionFile);
        if (o.json) a.json({ signedOut: true, alreadyEnded: already, apiUrl: saved.apiUrl });
        else a.line(already ? `the session at ${saved.apiUrl} had already ended; its file is deleted` : `signed out of ${saved.apiUrl}`);
        return EXIT.ok;
      }),
    );

  program
    .command("whoami")
    .description("the admin the saved session belongs to (asks the API, so it also says whether it still lives)")
    .option("--json", "the admin as JSON")
    .action(
      a.run(async (o: { json?: boolean }, cmd: Command) => {
        const { client, saved } = await a.signedIn(cmd);
        const admin = await client.whoami({ signal: io.signal });
        if (o.json) a.json({ admin, apiUrl: saved.apiUrl, expiresAt: saved.expiresAt });
        else a.line(`${admin.email} (${admin.role}, ${scopeText(admin.tenantIds)}) at ${saved.apiUrl}`);
        return EXIT.ok;
      }),
    );
}
