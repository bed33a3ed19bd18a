import { userInfo } from "node:os";
import { parseArgs } from "node:util";
import { AdminUserRepository, AuditLog, openDatabase, type AdminUser, prepareSchema } from "@intake/db";
import { IntakeError, isAdminRole, NotFoundError } from "@intake/domain";
import { loadDatabaseConfigOrExit } from "@intake/runtime";
import { generatePassword, tenantScopeFrom } from "./admin/auth/settings.ts";
import { ensureDevAdmin } from "./dev-admin.ts";

/**
 * Admin users (operators, compliance reviewers, admins) from the command line, against the
 * API's database (same env as the API: SQLite under DATA_DIR, or DATABASE_URL). This is how
 * the first admin is made; after that, admins manage users at /admin/users too.
 *
 *   admin-cli.ts create --email E --role operator|compliance|admin [--name N] [--tenants t1,t2] [--password-stdin]
 *   admin-cli.ts list
 *   admin-cli.ts disable --email E | enable --email E
 *   admin-cli.ts set-password --email E [--password-stdin]
 *   admin-cli.ts ensure-dev        the dev stack's admin (password in $DATA_DIR/dev-admin.txt)
 *
 * Without --password-stdin a password is generated and printed once on stdout; only its
 * scrypt hash is stored. With it, the password is read from standard input (one line).
 */
const USAGE = `usage: admin-cli.ts create --email E --role operator|compliance|admin [--name N] [--tenants t1,t2] [--password-stdin]
       admin-cli.ts list | disable --email E | enable --email E | set-password --email E [--password-stdin] | ensure-dev`;
const COMMANDS = ["create", "list", "disable", "enable", "set-password", "ensure-dev"];

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(64); // EX_USAGE
}

function parse(argv: string[]) {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: { email: { type: "string" }, role: { type: "string" }, name: { type: "string" }, tenants: { type: "string" }, "password-stdin": { type: "boolean" } },
    });
    if (positionals.length > 1) fail(`unexpected argument ${positionals[1]}`);
    return { command: positionals[0], flags: values };
  } catch (err) {
    return fail((err as Error).message);
  }
}

async function readPassword(fromStdin: boolean | undefined): Promise<{ password: string; generated: boolean }> {
  if (!fromStdin) return { password: generatePassword(), generated: true };
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  // One line: the trailing newline of `echo` or a heredoc is not part of the password.
  const password = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (password.includes("\n")) fail("--password-stdin reads one line; the input has several");
  return { password, generated: false };
}

const { command, flags } = parse(process.argv.slice(2));
if (!command || !COMMANDS.includes(command)) fail(command ? `unknown command ${command}` : "no command");
const email = () => flags.email ?? fail(`${command} needs --email`);

const config = loadDatabaseConfigOrExit();
const db = openDatabase(config.database);
// Whoever ran the command, for the audit trail (there is no admin session here).
const operator = `cli:${userInfo().username}`;
try {
  // Production schemas change only through `npm run migrate` (a command behind refuses, naming it).
  await prepareSchema(db, { migrateOnStart: config.migrateOnStart });
  const users = new AdminUserRepository(db);
  const audit = new AuditLog(db);
  const find = async (): Promise<AdminUser> => {
    const user = await users.byEmail(email());
    if (!user) throw new NotFoundError("admin_user", email());
    return user;
  };
  switch (command) {
    case "create": {
      const role = flags.role ?? fail("create needs --role operator|compliance|admin");
      if (!isAdminRole(role)) fail(`--role must be operator, compliance or admin, not ${role}`);
      const tenantIds = tenantScopeFrom(flags.tenants ?? null);
      const address = email();
      const { password, generated } = await readPassword(flags["password-stdin"]);
      const user = await users.create({ email: address, role, tenantIds, password, ...(flags.name ? { name: flags.name } : {}) });
      await audit.record({ actor: "cli", actorId: operator, action: "admin.user_created", detail: { userId: user.id, email: user.email, role, tenantIds } });
      process.stderr.write(`created ${user.role} ${user.email} (${user.id})${tenantIds ? ` limited to ${tenantIds.join(", ")}` : ""}\n`);
      if (generated) {
        process.stderr.write("its password is shown once; store it now:\n");
        process.stdout.write(`${password}\n`);
      }
      break;
    }
    case "list": {
      const rows = (await users.list()).map((u) => [u.email, u.role, u.tenantIds?.join(",") ?? "all", [u.hasPassword ? "password" : "", u.oidc ? "oidc" : ""].filter(Boolean).join("+") || "-", u.lastLoginAt?.toISOString() ?? "never", u.disabledAt ? "disabled" : "active"]);
      const header = ["EMAIL", "ROLE", "TENANTS", "SIGN-IN", "LAST LOGIN", "STATE"];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [header, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
      break;
    }
    case "disable":
    case "enable": {
      const user = await find();
      await users.update(user.id, { disabled: command === "disable" });
      await audit.record({ actor: "cli", actorId: operator, action: command === "disable" ? "admin.user_disabled" : "admin.user_updated", detail: { userId: user.id, after: { disabled: command === "disable" } } });
      process.stderr.write(`${command}d ${user.email}${command === "disable" ? " (its sessions have ended)" : ""}\n`);
      break;
    }
    case "set-password": {
      const user = await find();
      const { password, generated } = await readPassword(flags["password-stdin"]);
      await users.update(user.id, { password });
      await audit.record({ actor: "cli", actorId: operator, action: "admin.password_set", detail: { userId: user.id } });
      process.stderr.write(`set a new password for ${user.email} (its sessions have ended)\n`);
      if (generated) {
        process.stderr.write("it is shown once; store it now:\n");
        process.stdout.write(`${password}\n`);
      }
      break;
    }
    case "ensure-dev": {
      const dev = await ensureDevAdmin(users, audit, config.dataDir);
      // Lines for infra/bin/dev to print as they are.
      process.stdout.write(`email ${dev.email}\n`);
      if (dev.createdPassword) process.stdout.write(`password ${dev.createdPassword}   (shown once; also kept in ${dev.file}, mode 600)\n`);
      else if (dev.passwordUnknown) process.stdout.write(`password unknown (${dev.file} is gone): npm run admin -- set-password --email ${dev.email}\n`);
      else process.stdout.write(`password in ${dev.file}\n`);
      break;
    }
  }
} catch (err) {
  process.stderr.write(err instanceof IntakeError ? `${err.code}: ${err.message}\n` : `${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
