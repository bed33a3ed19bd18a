import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConflictError } from "@intake/domain";
import { devKeyFromSeed, type ApiKeyRepository } from "@intake/db";

export const DEV_TENANT = "dev";
export const DEV_KEY_FILE = "dev-api-key";

/**
 * The development tenant's key, created once and then the same on every start:
 * - DEV_API_KEY set: that string is the key (its derived form devKeyFromSeed is stored), so
 *   scripts can pin it;
 * - otherwise a random key generated on first use and kept in $DATA_DIR/dev-api-key with
 *   mode 600 (only its hash is in the database, so the file is the only way to show it again).
 */
export async function ensureDevKey(keys: ApiKeyRepository, opts: { dataDir: string; devApiKey?: string }): Promise<string> {
  await keys.ensureTenant(DEV_TENANT, "Development");
  if (opts.devApiKey) {
    const key = devKeyFromSeed(opts.devApiKey);
    await keys.create(DEV_TENANT, "development (DEV_API_KEY)", { secret: key, kind: "dev" });
    // ApiKeyRepository.authenticate accepts the seed itself: hand back what was set.
    return opts.devApiKey;
  }
  const file = join(opts.dataDir, DEV_KEY_FILE);
  const stored = readKeyFile(file);
  if (stored) {
    try {
      // Idempotent for the same key; recreates its row after the database was reset.
      await keys.create(DEV_TENANT, "development", { secret: stored, kind: "dev" });
      return stored;
    } catch (err) {
      // The stored key was revoked (or its id taken): replace it with a fresh one.
      if (!(err instanceof ConflictError)) throw err;
    }
  }
  const { key } = await keys.create(DEV_TENANT, "development", { kind: "dev" });
  mkdirSync(opts.dataDir, { recursive: true });
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

function readKeyFile(file: string): string | null {
  try {
    const key = readFileSync(file, "utf8").trim();
    return key.length > 0 ? key : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}
