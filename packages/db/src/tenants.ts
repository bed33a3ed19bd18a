import type { Knex } from "knex";
import { ConflictError, InvalidRequestError, textFault, textFaultMessage } from "@intake/domain";

/**
 * The tenants an admin manages from the settings pages: the applications whose API keys
 * create uploads. ApiKeyRepository.ensureTenant creates one on the fly for the key
 * commands; here creation is explicit and refuses an id that is taken.
 */
export interface Tenant {
  id: string;
  name: string;
  createdAt: Date;
}

const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export class TenantRepository {
  private readonly db: Knex;
  constructor(db: Knex) {
    this.db = db;
  }

  async create(id: string, name: string = id, now = new Date()): Promise<Tenant> {
    if (!TENANT_ID.test(id)) throw new InvalidRequestError("invalid_tenant", "tenant ids are 1-63 lower-case letters, digits, '_' or '-', starting with a letter or digit");
    const cleanName = name.trim() || id;
    if (cleanName.length > 200) throw new InvalidRequestError("invalid_name", "a tenant's name is at most 200 characters");
    // Shown on every review page and in exports: no control or bidi characters (nor NUL, which PostgreSQL refuses).
    const fault = textFault(cleanName, { invisible: false });
    if (fault) throw new InvalidRequestError("invalid_name", textFaultMessage("a tenant's name", fault), { field: "name" });
    const inserted = await this.db("tenants").insert({ id, name: cleanName, created_at: now.getTime() }).onConflict("id").ignore().returning("id");
    if (inserted.length === 0) throw new ConflictError("tenant_exists", `a tenant ${id} already exists`);
    return { id, name: cleanName, createdAt: now };
  }

  async byId(id: string): Promise<Tenant | null> {
    const row = await this.db("tenants").where({ id }).first();
    return row ? toTenant(row) : null;
  }

  async list(): Promise<Tenant[]> {
    return (await this.db("tenants").orderBy("id")).map(toTenant);
  }
}

function toTenant(r: Record<string, any>): Tenant {
  return { id: r.id, name: r.name, createdAt: new Date(Number(r.created_at)) };
}
