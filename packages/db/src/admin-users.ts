import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";
import type { Knex } from "knex";
import { ConflictError, InvalidRequestError, isAdminRole, textFault, textFaultMessage, type AdminPrincipal, type AdminRole } from "@intake/domain";

/**
 * Admin users (people who operate and review, never tenant keys) and their sessions.
 * Passwords are hashed with scrypt (memory-hard, in node:crypto); the stored form names its
 * parameters, so they can be raised later without breaking existing hashes. A session is a
 * random 256-bit token in a cookie; only its SHA-256 is stored.
 */
export interface AdminUser extends AdminPrincipal {
  createdAt: Date;
  lastLoginAt: Date | null;
  disabledAt: Date | null;
  hasPassword: boolean;
  /** The admin who created this account in the settings; null: the command line or OIDC. */
  createdBy: string | null;
  oidc: { issuer: string; subject: string } | null;
}

export interface AdminSession {
  principal: AdminPrincipal;
  csrfToken: string;
  method: "password" | "oidc";
  createdAt: Date;
  expiresAt: Date;
}

/** N=2^15, r=8: 32 MiB and ~60-100 ms per hash here; maxmem leaves room for it. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, keylen: 32 } as const;
const scrypt = (password: string, salt: Buffer, keylen: number, opts: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) => scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password.normalize("NFC"), salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 128 * SCRYPT.N * SCRYPT.r * 2 });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64url")}$${key.toString("base64url")}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split("$");
  if (scheme !== "scrypt" || !n || !r || !p || !salt || !key) return false;
  const expected = Buffer.from(key, "base64url");
  const N = Number(n), R = Number(r), P = Number(p);
  const actual = await scrypt(password.normalize("NFC"), Buffer.from(salt, "base64url"), expected.length, { N, r: R, p: P, maxmem: 128 * N * R * 2 });
  return timingSafeEqual(actual, expected);
}

/**
 * A hash of a password nobody has, verified when the account does not exist or has no
 * password, so a login's timing does not tell which accounts exist.
 */
let decoyHash: Promise<string> | undefined;
export function decoyPasswordHash(): Promise<string> {
  decoyHash ??= hashPassword(randomBytes(16).toString("hex"));
  return decoyHash;
}

export const MIN_PASSWORD_LENGTH = 12;
// No spaces and no control characters (NUL above all: PostgreSQL refuses it in any text).
const EMAIL = /^[^\s@\u0000-\u001f\u007f]{1,64}@[^\s@\u0000-\u001f\u007f]{1,255}$/;

/** A person's display name as stored: shown on pages and in the audit trail, so no control or bidi characters. */
function checkedName(name: string): string {
  const fault = textFault(name, { invisible: false });
  if (fault) throw new InvalidRequestError("invalid_name", textFaultMessage("name", fault), { field: "name" });
  if (name.trim().length > 200) throw new InvalidRequestError("invalid_name", "a name is at most 200 characters", { field: "name" });
  return name.trim();
}

/** The address as looked up: an address no account can have (a NUL, a space) finds none. */
function lookupEmail(email: string): string | null {
  const e = email.trim().toLowerCase();
  return EMAIL.test(e) ? e : null;
}
const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

export interface NewAdminUser {
  email: string;
  name?: string;
  role: AdminRole;
  tenantIds?: readonly string[] | null;
  password?: string;
  oidc?: { issuer: string; subject: string };
  createdBy?: string;
}

export class AdminUserRepository {
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  async create(input: NewAdminUser, now = new Date()): Promise<AdminUser> {
    const email = input.email.trim().toLowerCase();
    if (!EMAIL.test(email)) throw new InvalidRequestError("invalid_email", "an admin user needs an email address (name@domain)");
    if (!isAdminRole(input.role)) throw new InvalidRequestError("invalid_role", "role must be operator, compliance or admin");
    if (input.password !== undefined && input.password.length < MIN_PASSWORD_LENGTH) {
      throw new InvalidRequestError("weak_password", `a password must be at least ${MIN_PASSWORD_LENGTH} characters`);
    }
    for (const t of input.tenantIds ?? []) if (!TENANT_ID.test(t)) throw new InvalidRequestError("invalid_tenant", `not a tenant id: ${t.slice(0, 70)}`);
    if (await this.db("admin_users").where({ email }).first()) throw new ConflictError("admin_user_exists", `an admin user ${email} already exists`);
    const row = {
      id: `adm_${randomBytes(12).toString("hex")}`,
      email,
      name: (input.name !== undefined ? checkedName(input.name) : "") || email,
      role: input.role,
      tenant_ids: input.tenantIds ? JSON.stringify([...input.tenantIds]) : null,
      password_hash: input.password !== undefined ? await hashPassword(input.password) : null,
      oidc_issuer: input.oidc?.issuer ?? null,
      oidc_subject: input.oidc?.subject ?? null,
      created_at: now.getTime(),
      created_by: input.createdBy ?? null,
    };
    await this.db("admin_users").insert(row);
    return toUser(row);
  }

  async byId(id: string): Promise<AdminUser | null> {
    const row = await this.db("admin_users").where({ id }).first();
    return row ? toUser(row) : null;
  }

  async byEmail(email: string): Promise<AdminUser | null> {
    const e = lookupEmail(email);
    const row = e ? await this.db("admin_users").where({ email: e }).first() : undefined;
    return row ? toUser(row) : null;
  }

  async byOidcSubject(issuer: string, subject: string): Promise<AdminUser | null> {
    const row = await this.db("admin_users").where({ oidc_issuer: issuer, oidc_subject: subject }).first();
    return row ? toUser(row) : null;
  }

  async list(): Promise<AdminUser[]> {
    return (await this.db("admin_users").orderBy("email")).map(toUser);
  }

  /** The user whose password this is, or null (unknown, disabled, no password, wrong password) in near-constant time. */
  async checkPassword(email: string, password: string): Promise<AdminUser | null> {
    const e = lookupEmail(email);
    const row = e ? await this.db("admin_users").where({ email: e }).first() : undefined;
    const stored: string = row?.password_hash ?? (await decoyPasswordHash());
    const ok = await verifyPassword(password, stored);
    if (!row || !row.password_hash || row.disabled_at || !ok) return null;
    return toUser(row);
  }

  async update(id: string, patch: { role?: AdminRole; tenantIds?: readonly string[] | null; name?: string; password?: string; disabled?: boolean; oidc?: { issuer: string; subject: string } }, now = new Date()): Promise<AdminUser | null> {
    const set: Record<string, unknown> = {};
    if (patch.role !== undefined) {
      if (!isAdminRole(patch.role)) throw new InvalidRequestError("invalid_role", "role must be operator, compliance or admin");
      set.role = patch.role;
    }
    if (patch.tenantIds !== undefined) set.tenant_ids = patch.tenantIds === null ? null : JSON.stringify([...patch.tenantIds]);
    if (patch.name !== undefined) set.name = checkedName(patch.name);
    if (patch.password !== undefined) {
      if (patch.password.length < MIN_PASSWORD_LENGTH) throw new InvalidRequestError("weak_password", `a password must be at least ${MIN_PASSWORD_LENGTH} characters`);
      set.password_hash = await hashPassword(patch.password);
    }
    if (patch.disabled !== undefined) set.disabled_at = patch.disabled ? now.getTime() : null;
    if (patch.oidc) {
      set.oidc_issuer = patch.oidc.issuer;
      set.oidc_subject = patch.oidc.subject;
    }
    if (Object.keys(set).length) await this.db("admin_users").where({ id }).update(set);
    // A changed role, scope, password or a disabled account ends the user's sessions.
    if (patch.role !== undefined || patch.tenantIds !== undefined || patch.password !== undefined || patch.disabled) {
      await this.db("admin_sessions").where({ user_id: id }).whereNull("revoked_at").update({ revoked_at: now.getTime() });
    }
    return this.byId(id);
  }

  async recordLogin(id: string, now = new Date()): Promise<void> {
    await this.db("admin_users").where({ id }).update({ last_login_at: now.getTime() });
  }
}

export class AdminSessionRepository {
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  /** Starts a session and returns the only copy of its token (for the cookie). */
  async start(userId: string, method: AdminSession["method"], ttlSeconds: number, now = new Date()): Promise<{ token: string; csrfToken: string; expiresAt: Date }> {
    const token = randomBytes(32).toString("base64url");
    const csrfToken = randomBytes(24).toString("base64url");
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
    await this.db("admin_sessions").insert({ id_hash: sha256(token), user_id: userId, csrf_token: csrfToken, method, created_at: now.getTime(), expires_at: expiresAt.getTime(), last_seen_at: now.getTime() });
    return { token, csrfToken, expiresAt };
  }

  /** The live session behind a cookie's token (not expired, not idle too long, not revoked, user enabled), or null. */
  async resolve(token: string, idleSeconds: number, now = new Date()): Promise<AdminSession | null> {
    if (token.length < 20 || token.length > 100) return null;
    const row = await this.db("admin_sessions as s")
      .join("admin_users as u", "u.id", "s.user_id")
      .where("s.id_hash", sha256(token))
      .select("s.*", "u.email", "u.name", "u.role", "u.tenant_ids", "u.disabled_at")
      .first();
    const t = now.getTime();
    if (!row || row.revoked_at || row.disabled_at || Number(row.expires_at) <= t || Number(row.last_seen_at) + idleSeconds * 1000 <= t) return null;
    // Idle time counts from the last request, written at most once a minute.
    if (t - Number(row.last_seen_at) > 60_000) await this.db("admin_sessions").where({ id_hash: row.id_hash }).update({ last_seen_at: t });
    return {
      principal: { id: row.user_id, email: row.email, name: row.name, role: row.role, tenantIds: parseTenants(row.tenant_ids) },
      csrfToken: row.csrf_token,
      method: row.method,
      createdAt: new Date(Number(row.created_at)),
      expiresAt: new Date(Number(row.expires_at)),
    };
  }

  async revoke(token: string, now = new Date()): Promise<void> {
    await this.db("admin_sessions").where({ id_hash: sha256(token) }).whereNull("revoked_at").update({ revoked_at: now.getTime() });
  }
}

function parseTenants(v: unknown): string[] | null {
  if (v === null || v === undefined) return null;
  return JSON.parse(String(v)) as string[];
}

function toUser(r: Record<string, any>): AdminUser {
  return {
    id: r.id,
    email: r.email,
    name: r.name,
    role: r.role,
    tenantIds: parseTenants(r.tenant_ids),
    createdAt: new Date(Number(r.created_at)),
    lastLoginAt: r.last_login_at ? new Date(Number(r.last_login_at)) : null,
    disabledAt: r.disabled_at ? new Date(Number(r.disabled_at)) : null,
    hasPassword: Boolean(r.password_hash),
    createdBy: r.created_by ?? null,
    oidc: r.oidc_issuer && r.oidc_subject ? { issuer: r.oidc_issuer, subject: r.oidc_subject } : null,
  };
}
