import { parseArgs } from "node:util";
import { ApiKeyRepository, openDatabase, prepareSchema } from "@intake/db";
import { IntakeError } from "@intake/domain";
import { loadDatabaseConfigOrExit } from "@intake/runtime";
import { ensureDevKey } from "./dev-key.ts";

/**
 * API key administration, against the same database as the API (same env: SQLite under
 * DATA_DIR by default, DATABASE_URL for PostgreSQL). It reads the database settings only:
 * administering keys needs no storage, queue or scanner configuration.
 *
 *   keys-cli.ts create <tenant> [--name N]   prints the new key once; only its hash is stored
 *   keys-cli.ts list [--tenant T]
 *   keys-cli.ts revoke <keyId>
 *   keys-cli.ts ensure-dev                   prints only the development key on stdout
 */
const USAGE = "usage: keys-cli.ts create <tenant> [--name N] | list [--tenant T] | revoke <keyId> | ensure-dev";
const COMMANDS = ["create", "list", "revoke", "ensure-dev"];

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(64); // EX_USAGE
}

function parse(argv: string[]): { command: string | undefined; positional: string[]; flags: { name?: string; tenant?: string } } {
  try {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { name: { type: "string" }, tenant: { type: "string" } } });
    return { command: positionals[0], positional: positionals.slice(1), flags: values };
  } catch (err) {
    return fail((err as Error).message);
  }
}

const { command, positional, flags } = parse(process.argv.slice(2));
if (!command || !COMMANDS.includes(command)) fail(command ? `unknown command ${command}` : "no command");

const config = loadDatabaseConfigOrExit();
const db = openDatabase(config.database);
try {
  // Production schemas change only through `npm run migrate` (a command behind refuses, naming it).
  await prepareSchema(db, { migrateOnStart: config.migrateOnStart });
  const keys = new ApiKeyRepository(db);
  switch (command) {
    case "create": {
      const tenant = positional[0] ?? fail("create needs a tenant id");
      const { key, info } = await keys.create(tenant, flags.name ?? "cli");
      process.stderr.write(`created key ${info.id} for tenant ${info.tenantId}. It is shown once; store it now:\n`);
      process.stdout.write(`${key}\n`);
      break;
    }
    case "list": {
      const list = await keys.list(flags.tenant);
      const rows = list.map((k) => [k.id, k.tenantId, k.name, k.createdAt.toISOString(), k.lastUsedAt?.toISOString() ?? "-", k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : "active"]);
      const header = ["KEY ID", "TENANT", "NAME", "CREATED", "LAST USED", "STATE"];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [header, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
      break;
    }
    case "revoke": {
      const keyId = positional[0] ?? fail("revoke needs a key id (see list)");
      await keys.revoke(keyId);
      process.stderr.write(`revoked key ${keyId}\n`);
      break;
    }
    case "ensure-dev": {
      process.stdout.write(`${await ensureDevKey(keys, { dataDir: config.dataDir, ...(config.devApiKey ? { devApiKey: config.devApiKey } : {}) })}\n`);
      break;
    }
  }
} catch (err) {
  process.stderr.write(err instanceof IntakeError ? `${err.code}: ${err.message}\n` : `${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
