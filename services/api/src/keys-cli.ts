import { ApiKeyRepository, migrate, openDatabase } from "@intake/db";
import { IntakeError } from "@intake/domain";
import { loadConfigOrExit } from "@intake/runtime";
import { ensureDevKey } from "./dev-key.ts";

/**
 * API key administration, against the same database as the API (same env: SQLite under
 * DATA_DIR by default, DATABASE_URL for PostgreSQL).
 *
 *   keys-cli.ts create <tenant> [--name N]   prints the new key once; only its hash is stored
 *   keys-cli.ts list [--tenant T]
 *   keys-cli.ts revoke <keyId>
 *   keys-cli.ts ensure-dev                   prints only the development key on stdout
 */
const USAGE = "usage: keys-cli.ts create <tenant> [--name N] | list [--tenant T] | revoke <keyId> | ensure-dev";

function parse(argv: string[]): { command: string | undefined; positional: string[]; flags: Map<string, string> } {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith("--")) {
      const [name, inline] = a.slice(2).split("=", 2) as [string, string | undefined];
      const value = inline ?? argv[++i];
      if (value === undefined) fail(`--${name} needs a value`);
      flags.set(name, value);
    } else positional.push(a);
  }
  return { command: positional.shift(), positional, flags };
}

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(64); // EX_USAGE
}

const { command, positional, flags } = parse(process.argv.slice(2));
if (!command || !["create", "list", "revoke", "ensure-dev"].includes(command)) fail(command ? `unknown command ${command}` : "no command");

const config = loadConfigOrExit();
const db = openDatabase(config.database);
try {
  await migrate(db);
  const keys = new ApiKeyRepository(db);
  switch (command) {
    case "create": {
      const tenant = positional[0] ?? fail("create needs a tenant id");
      const { key, info } = await keys.create(tenant, flags.get("name") ?? "cli");
      process.stderr.write(`created key ${info.id} for tenant ${info.tenantId}. It is shown once; store it now:\n`);
      process.stdout.write(`${key}\n`);
      break;
    }
    case "list": {
      const list = await keys.list(flags.get("tenant"));
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
