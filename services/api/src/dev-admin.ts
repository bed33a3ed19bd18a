import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AdminUserRepository, AuditLog } from "@intake/db";
import { generatePassword } from "./admin/auth/settings.ts";

export const DEV_ADMIN_EMAIL = "admin@intake.localhost";
export const DEV_ADMIN_FILE = "dev-admin.txt";

export interface DevAdmin {
  email: string;
  /** Where the password is kept ($DATA_DIR/dev-admin.txt, mode 600). */
  file: string;
  /** The password, only on the start that created the account (it is printed once). */
  createdPassword?: string;
  /** The file is gone but the account exists: its password is not known here. */
  passwordUnknown?: boolean;
}

/**
 * The development stack's first admin, created once: an admin-role account with a generated
 * password written to $DATA_DIR/dev-admin.txt (mode 600, the only copy besides its scrypt
 * hash). Later starts find the account and point at the file again.
 */
export async function ensureDevAdmin(users: AdminUserRepository, audit: AuditLog, dataDir: string): Promise<DevAdmin> {
  const file = join(dataDir, DEV_ADMIN_FILE);
  if (await users.byEmail(DEV_ADMIN_EMAIL)) return { email: DEV_ADMIN_EMAIL, file, ...(passwordIn(file) ? {} : { passwordUnknown: true }) };
  const password = generatePassword();
  const user = await users.create({ email: DEV_ADMIN_EMAIL, name: "Development admin", role: "admin", tenantIds: null, password });
  await audit.record({ actor: "cli", actorId: "dev-stack", action: "admin.user_created", detail: { userId: user.id, email: user.email, role: user.role, tenantIds: null } });
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `email: ${DEV_ADMIN_EMAIL}\npassword: ${password}\n`, { mode: 0o600 });
  return { email: DEV_ADMIN_EMAIL, file, createdPassword: password };
}

function passwordIn(file: string): boolean {
  try {
    return /^password: \S+$/m.test(readFileSync(file, "utf8"));
  } catch {
    return false;
  }
}
