import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Knex } from "knex";
import { ConflictError, InvalidRequestError, NotFoundError } from "@intake/domain";

/**
 * API keys: `ik_live_<id>_<secret>`. The id is public (it finds the row); only the SHA-256
 * of the 256-bit random secret is stored. A fast hash is right here: the secret is random,
 * not a password, so there is nothing to brute-force that a slow hash would protect.
 */
export interface ApiKeyInfo {
  id: string;
  tenantId: string;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const KEY_FORMAT = /^ik_(live|dev)_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;
/** DEV_API_KEY's minimum length (config enforces the same). */
const MIN_SEED_LENGTH = 8;
const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

export class ApiKeyRepository {
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  async ensureTenant(tenantId: string, name = tenantId, now = new Date()): Promise<void> {
    if (!TENANT_ID.test(tenantId)) {
      throw new InvalidRequestError("invalid_tenant", "tenant ids are 1-63 lower-case letters, digits, '_' or '-'");
    }
    await this.db("tenants").insert({ id: tenantId, name, created_at: now.getTime() }).onConflict("id").ignore();
  }

  /** Creates a key and returns the only copy of its secret. */
  async create(tenantId: string, name: string, opts: { secret?: string; kind?: "live" | "dev" } = {}, now = new Date()): Promise<{ key: string; info: ApiKeyInfo }> {
    await this.ensureTenant(tenantId);
    const kind = opts.kind ?? "live";
    const id = randomBytes(10).toString("hex").slice(0, 16);
    const key = opts.secret ?? `ik_${kind}_${id}_${randomBytes(32).toString("base64url")}`;
    const parsed = KEY_FORMAT.exec(key);
    if (!parsed) throw new InvalidRequestError("invalid_api_key", "a pinned key must look like ik_dev_<16 lower-case alphanumerics>_<43 base64url characters>");
    const keyId = parsed[2]!;
    const existing = await this.db("api_keys").where({ id: keyId }).first();
    if (existing) {
      if (existing.secret_hash === sha256(parsed[3]!) && existing.tenant_id === tenantId && !existing.revoked_at) {
        return { key, info: toInfo(existing) };
      }
      throw new ConflictError("api_key_exists", `a different key with id ${keyId} already exists`);
    }
    await this.db("api_keys").insert({ id: keyId, tenant_id: tenantId, name, secret_hash: sha256(parsed[3]!), created_at: now.getTime() });
    return { key, info: toInfo((await this.db("api_keys").where({ id: keyId }).first())!) };
  }

  /** The tenant a presented key belongs to, or null for an unknown, malformed or revoked key. */
  async authenticate(presented: string, now = new Date()): Promise<{ tenantId: string; keyId: string } | null> {
    // A pinned development key (DEV_API_KEY=any string) is stored as the well-formed key
    // derived from it, so scripts can send the string they set. The derivation is one-way:
    // it only finds a row that was created from that very string.
    const parsed = KEY_FORMAT.exec(presented) ?? (presented.length >= MIN_SEED_LENGTH ? KEY_FORMAT.exec(devKeyFromSeed(presented)) : null);
    if (!parsed) return null;
    const row = await this.db("api_keys").where({ id: parsed[2] }).first();
    if (!row || row.revoked_at) return null;
    const want = Buffer.from(row.secret_hash, "hex");
    const got = Buffer.from(sha256(parsed[3]!), "hex");
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    // Best effort and coarse (once a minute) so authentication does not write on every request.
    if (!row.last_used_at || now.getTime() - Number(row.last_used_at) > 60_000) {
      await this.db("api_keys").where({ id: row.id }).update({ last_used_at: now.getTime() });
    }
    return { tenantId: row.tenant_id, keyId: row.id };
  }

  async list(tenantId?: string): Promise<ApiKeyInfo[]> {
    const q = this.db("api_keys").orderBy("created_at");
    if (tenantId) q.where({ tenant_id: tenantId });
    return (await q).map(toInfo);
  }

  async revoke(keyId: string, now = new Date()): Promise<void> {
    const count = await this.db("api_keys").where({ id: keyId }).whereNull("revoked_at").update({ revoked_at: now.getTime() });
    if (count === 0) throw new NotFoundError("api_key", keyId);
  }
}

/** A well-formed development key derived from a seed, so DEV_API_KEY can be any string. */
/** The secret part of a well-formed key (base64url, so it may itself hold "_"), else null. */
export function secretPartOf(key: string): string | null {
  return KEY_FORMAT.exec(key)?.[3] ?? null;
}

export function devKeyFromSeed(seed: string): string {
  if (KEY_FORMAT.test(seed)) return seed;
  const digest = createHash("sha256").update(`intake-dev-key:${seed}`).digest();
  const id = digest.subarray(0, 8).toString("hex");
  const secret = createHash("sha256").update(digest).digest("base64url");
  return `ik_dev_${id}_${secret}`;
}

function toInfo(r: Record<string, any>): ApiKeyInfo {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    createdAt: new Date(Number(r.created_at)),
    lastUsedAt: r.last_used_at ? new Date(Number(r.last_used_at)) : null,
    revokedAt: r.revoked_at ? new Date(Number(r.revoked_at)) : null,
  };
}
