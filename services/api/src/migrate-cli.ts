import { loadDatabaseConfigOrExit } from "@intake/runtime";
import { migrate, openDatabase, pendingMigrations } from "@intake/db";

/**
 * The schema migrations as a one-shot command, run before a release's processes start
 * (compose's `migrate` service, the Kubernetes migration Job, `npm run migrate`):
 *
 *   node services/api/src/migrate-cli.ts           run what is pending, then exit 0
 *   node services/api/src/migrate-cli.ts status    list what is pending; exit 0 if nothing, 3 if behind
 *
 * Safe to start twice at once: on PostgreSQL the migrators queue on an advisory lock
 * (packages/db/src/migrator.ts). Needs only the database settings (DATABASE_URL, or
 * SQLITE_PATH/DATA_DIR for the embedded database).
 */
const command = process.argv[2] ?? "latest";
if (command !== "latest" && command !== "status") {
  process.stderr.write(`unknown command ${command}\nusage: migrate-cli.ts [latest|status]\n`);
  process.exit(1);
}
const config = loadDatabaseConfigOrExit();
const db = openDatabase(config.database);
try {
  const before = await pendingMigrations(db);
  if (command === "status") {
    process.stdout.write(before.length ? `${before.length} migration(s) pending: ${before.join(", ")}\n` : "schema up to date\n");
    process.exitCode = before.length ? 3 : 0;
  } else {
    await migrate(db);
    const after = await pendingMigrations(db);
    if (after.length) throw new Error(`migrations still pending after the run: ${after.join(", ")}`);
    process.stdout.write(before.length ? `ran ${before.length} migration(s): ${before.join(", ")}; schema up to date\n` : "schema up to date (nothing to run)\n");
  }
} catch (err) {
  // The database's own message names the failing statement; the URL (and its password) is not in it.
  process.stderr.write(`migration failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
