import { type Command, InvalidArgumentError, Option } from "commander";
import { ADMIN_ROLES, QUARANTINE_REASONS, type AdminRole } from "@intake/domain";
import type { AdminUserView, IntakeAdminClient } from "../admin-client.ts";
import { scopeText, table, type AdminCli } from "./admin-runner.ts";
import { EXIT, UsageError } from "./exit-codes.ts";
import { readSecretFromStdin } from "./secret-input.ts";

/**
 * The admin commands, one per route of the admin JSON API (/v1/admin/...), on the session
 * `intake login` saved: tenants' API keys, admin users, tenants, the quarantine review. What
 * only the server can do (the audit chain's check reads the database) says where to run it.
 */
export function addAdminCommands(program: Command, a: AdminCli): void {
  addKeyCommands(program, a);
  const admin = program.command("admin").description("admin users and tenants (the admin role, every tenant)");
  addUserCommands(admin, a);
  addTenantCommands(admin, a);
  addQuarantineCommands(program, a);
  addAuditCommands(program, a);
}

const role = (v: string): AdminRole => {
  if (!(ADMIN_ROLES as readonly string[]).includes(v)) throw new UsageError(`${JSON.stringify(v)} is not a role: a role is one of ${ADMIN_ROLES.join(", ")}`);
  return v as AdminRole;
};
/** "*" or "all": every tenant (null); else a comma-separated list the API checks. */
const tenants = (v: string): string[] | null => (v === "*" || v === "all" ? null : v.split(",").map((t) => t.trim()).filter(Boolean));

function addKeyCommands(program: Command, a: AdminCli): void {
  const { io } = a;
  const keys = program.command("keys").description("tenants' API keys (create, list, revoke) through the admin API");
  keys
    .command("create")
    .description("create an API key for a tenant; the key is printed once, on stdout")
    .requiredOption("--tenant <tenant>", "the tenant the key uploads for")
    .option("--name <name>", "what uses the key", "cli")
    .option("--json", "{key, apiKey} as JSON")
    .action(
      a.run(async (o: { tenant: string; name: string; json?: boolean }, cmd: Command) => {
        const { client } = await a.signedIn(cmd);
        const created = await client.createApiKey({ tenantId: o.tenant, name: o.name }, { signal: io.signal });
        if (o.json) a.json(created);
        else {
          io.stderr.write(`created key ${created.apiKey.id} for tenant ${created.apiKey.tenantId}. It is shown once; store it now:\n`);
          a.line(created.key);
        }
        return EXIT.ok;
      }),
    );
  keys
    .command("list")
    .description("list API keys (never their secrets)")
    .option("--tenant <tenant>", "only this tenant's keys")
    .option("--json", "one JSON object per key")
    .action(
      a.run(async (o: { tenant?: string; json?: boolean }, cmd: Command) => {
        const { client } = await a.signedIn(cmd);
        const list = await client.listApiKeys(o.tenant ? { tenant: o.tenant } : {}, { signal: io.signal });
        if (o.json) list.forEach(a.json);
        else io.stdout.write(table([["ID", "TENANT", "CREATED", "LAST USED", "REVOKED", "NAME"], ...list.map((k) => [k.id, k.tenantId, k.createdAt, k.lastUsedAt ?? "-", k.revokedAt ?? "-", k.name])]));
        return EXIT.ok;
      }),
    );
  keys
    .command("revoke")
    .description("revoke an API key: it stops working at once")
    .argument("<id>", "the key's id (from keys list)")
    .option("--json", "the outcome as JSON")
    .action(
      a.run(async (id: string, o: { json?: boolean }, cmd: Command) => {
        const { client } = await a.signedIn(cmd);
        await client.revokeApiKey(id, { signal: io.signal });
        if (o.json) a.json({ revoked: id });
        // API processes remember a good key for a few seconds (the saved database read).
        else a.line(`revoked key ${id}; it stops working within seconds`);
        return EXIT.ok;
      }),
    );
}

function addUserCommands(admin: Command, a: AdminCli): void {
  const { io } = a;
  const users = admin.command("users").description("admin users: people, roles and tenant scopes");
  const show = (u: AdminUserView, json?: boolean) => (json ? a.json(u) : a.line(`${u.id}  ${u.email}  ${u.role}  ${scopeText(u.tenantIds)}${u.disabledAt ? "  disabled" : ""}`));
  /** A user named by id or by email address (looked up in the list). */
  const resolve = async (client: IntakeAdminClient, who: string): Promise<string> => {
    if (!who.includes("@")) return who;
    const found = (await client.listUsers({ signal: io.signal })).find((u) => u.email === who.toLowerCase());
    if (!found) throw new UsageError(`no admin user with the email address ${who}`);
    return found.id;
  };
  const change = (name: string, description: string, args: [string, string][], changes: (values: string[]) => Record<string, unknown>) => {
    const c = users.command(name).description(description).argument("<user>", "the user's id or email address");
    for (const [arg, about] of args) c.argument(arg, about);
    c.option("--json", "the changed user as JSON").action(
      a.run(async (...all: unknown[]) => {
        const cmd = all.at(-1) as Command;
        const o = all.at(-2) as { json?: boolean };
        const [who, ...values] = all.slice(0, -2) as string[];
        const { client } = await a.signedIn(cmd);
        show(await client.updateUser(await resolve(client, who!), changes(values), { signal: io.signal }), o.json);
        return EXIT.ok;
      }),
    );
  };

  users
    .command("list")
    .description("list admin users")
    .option("--json", "one JSON object per user")
    .action(
      a.run(async (o: { json?: boolean }, cmd: Command) => {
        const { client } = await a.signedIn(cmd);
        const list = await client.listUsers({ signal: io.signal });
        if (o.json) list.forEach(a.json);
        else io.stdout.write(table([["ID", "EMAIL", "ROLE", "TENANTS", "SIGN-IN", "LAST SIGN-IN", "DISABLED"], ...list.map((u) => [u.id, u.email, u.role, scopeText(u.tenantIds), [u.signIn.password && "password", u.signIn.oidc && "oidc"].filter(Boolean).join("+") || "-", u.lastLoginAt ?? "-", u.disabledAt ?? "-"])]));
        return EXIT.ok;
      }),
    );
  users
    .command("create")
    .description("create an admin user; without --password-stdin the API generates a password, printed once on stdout")
    .requiredOption("--email <email>", "their email address (how they sign in)")
    .addOption(new Option("--role <role>", "what they may do").choices(ADMIN_ROLES).makeOptionMandatory())
    .option("--name <name>", "their name")
    .option("--tenants <ids>", "the tenants they see, comma-separated, or * for every tenant", tenants)
    .option("--password-stdin", "read their password from standard input (one line)")
    .option("--json", "{user, password?} as JSON")
    .action(
      a.run(async (o: { email: string; role: AdminRole; name?: string; tenants?: string[] | null; passwordStdin?: boolean; json?: boolean }, cmd: Command) => {
        const { client } = await a.signedIn(cmd);
        const password = o.passwordStdin ? await readSecretFromStdin(io.stdin ?? process.stdin, "password") : undefined;
        if (password) a.secrets.add(password);
        const made = await client.createUser({ email: o.email, role: o.role, ...(o.name ? { name: o.name } : {}), ...(o.tenants !== undefined ? { tenantIds: o.tenants } : {}), ...(password ? { password } : {}) }, { signal: io.signal });
        if (o.json) a.json(made);
        else {
          io.stderr.write(`created ${made.user.email} (${made.user.role}, ${scopeText(made.user.tenantIds)}) as ${made.user.id}\n`);
          if (made.password) {
            io.stderr.write("their password, shown once:\n");
            a.line(made.password);
          }
        }
        return EXIT.ok;
      }),
    );
  change("set-role", "change a user's role (their sessions end)", [["<role>", `one of ${ADMIN_ROLES.join(", ")}`]], ([r]) => ({ role: role(r!) }));
  change("set-tenants", "change the tenants a user sees (their sessions end)", [["<tenants>", "comma-separated tenant ids, or * for every tenant"]], ([t]) => ({ tenantIds: tenants(t!) }));
  change("rename", "change a user's name", [["<name>", "their name"]], ([n]) => ({ name: n }));
  change("disable", "disable a user: they cannot sign in and their sessions end", [], () => ({ disabled: true }));
  change("enable", "enable a disabled user again", [], () => ({ disabled: false }));
}

function addTenantCommands(admin: Command, a: AdminCli): void {
  const { io } = a;
  const t = admin.command("tenants").description("tenants: the applications that upload");
  t.command("list")
    .description("list tenants")
    .option("--json", "one JSON object per tenant")
    .action(
      a.run(async (o: { json?: boolean }, cmd: Command) => {
        const { client } = await a.signedIn(cmd);
        const list = await client.listTenants({ signal: io.signal });
        if (o.json) list.forEach(a.json);
        else io.stdout.write(table([["ID", "CREATED", "NAME"], ...list.map((x) => [x.id, x.createdAt, x.name ?? ""])]));
        return EXIT.ok;
      }),
    );
  t.command("create")
    .description("create a tenant")
    .argument("<id>", "its id: lower-case letters, digits, _ and -")
    .option("--name <name>", "its display name")
    .option("--json", "the tenant as JSON")
    .action(
      a.run(async (id: string, o: { name?: string; json?: boolean }, cmd: Command) => {
        const { client } = await a.signedIn(cmd);
        const made = await client.createTenant({ id, ...(o.name ? { name: o.name } : {}) }, { signal: io.signal });
        if (o.json) a.json(made);
        else a.line(`created tenant ${made.id}${made.name ? ` (${made.name})` : ""}`);
        return EXIT.ok;
      }),
    );
}

const day = (name: string) => (v: string): string => {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(v)) throw new InvalidArgumentError(`${name} is a UTC day, YYYY-MM-DD`);
  return v;
};
const limit = (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 500) throw new InvalidArgumentError("--limit is a whole number from 1 to 500");
  return n;
};

function addQuarantineCommands(program: Command, a: AdminCli): void {
  const { io } = a;
  const q = program.command("quarantine").description("the quarantine review (quarantine.review: compliance and admin roles)");
  q.command("list")
    .description("quarantined uploads, newest first (within your tenant scope)")
    .option("--tenant <tenant>", "only this tenant's")
    .addOption(new Option("--reason <reason>", "only this reason").choices(QUARANTINE_REASONS))
    .option("--signature <name>", "only this malware signature")
    .option("--since <day>", "quarantined on or after this UTC day (YYYY-MM-DD)", day("--since"))
    .option("--until <day>", "quarantined on or before this UTC day (YYYY-MM-DD)", day("--until"))
    .option("--limit <n>", "at most this many (1 to 500)", limit, 100)
    .option("--cursor <cursor>", "continue after a previous page (printed at its end)")
    .option("--json", "one JSON object per upload, its audit trail included")
    .action(
      a.run(async (o: { tenant?: string; reason?: string; signature?: string; since?: string; until?: string; limit: number; cursor?: string; json?: boolean }, cmd: Command) => {
        const { client } = await a.signedIn(cmd);
        const page = await client.listQuarantine(
          { tenant: o.tenant, reason: o.reason, signature: o.signature, from: o.since, to: o.until, limit: o.limit, cursor: o.cursor } as Record<string, string | number | undefined>,
          { signal: io.signal },
        );
        if (o.json) page.items.forEach(a.json);
        else io.stdout.write(table([["ID", "QUARANTINED", "TENANT", "REASON", "STATE", "SIGNATURE", "FILE"], ...page.items.map((r) => [r.id, r.finishedAt, r.tenantId, r.reason ?? "-", r.state, r.signature ?? "-", r.filename])]));
        if (page.nextCursor) io.stderr.write(`more: add --cursor ${page.nextCursor}\n`);
        return EXIT.ok;
      }),
    );
}

function addAuditCommands(program: Command, a: AdminCli): void {
  const audit = program.command("audit").description("the audit trail");
  audit
    .command("verify")
    .description("check the audit trail's hash chain (runs on the server: see below)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(
      a.run(async () => {
        a.io.stderr.write(
          "intake: the audit chain is checked against the database itself, and the admin API does not expose that check.\n" +
            "Run it where the API's database is reachable (same environment as the API):\n" +
            "  npm run audit -- verify [--anchor SEQ:HASH]... [--json]\n",
        );
        return EXIT.usage;
      }),
    );
}
