import type { AdminRole, TenantPolicy, TenantPolicyView } from "@intake/domain";
export type { TenantPolicyView };
import { apiError } from "./client.ts";
import { IntakeApiError } from "./errors.ts";

/**
 * The admin JSON API (/v1/admin/...) as an admin's script sees it: a password sign-in that
 * yields a session (the cookie's token and the session's CSRF token), then typed calls for
 * what the API offers admins. Node only in practice: it sets the Cookie header itself, which
 * a browser would refuse (a browser page uses its own cookie). The session is a credential:
 * nothing here puts it in an error message.
 */
export const ADMIN_SESSION_COOKIE = "intake_admin";

/** What a signed-in admin holds: send both on every request (the token as the cookie). */
export interface AdminSession {
  token: string;
  csrfToken: string;
  expiresAt: string;
}

export interface AdminPrincipalView {
  id: string;
  email: string;
  name: string;
  role: AdminRole;
  /** null: every tenant. */
  tenantIds: string[] | null;
}

export interface AdminUserView extends AdminPrincipalView {
  createdAt: string;
  lastLoginAt: string | null;
  disabledAt: string | null;
  signIn: { password: boolean; oidc: { issuer: string; subject: string } | null };
}

export interface TenantView {
  id: string;
  name: string | null;
  createdAt: string;
}

export interface ApiKeyView {
  id: string;
  tenantId: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** One quarantined upload as the review's JSON export has it (timeline included). */
export interface QuarantineRecordView {
  id: string;
  tenantId: string;
  tenantName: string | null;
  filename: string;
  state: string;
  status: string;
  reason: string | null;
  reasonDetail: string | null;
  signature: string | null;
  declaredType: string;
  detectedType: string | null;
  declaredSize: number;
  storedSize: number | null;
  sha256: string | null;
  createdAt: string;
  finishedAt: string;
  retentionUntil: string;
  purgedAt: string | null;
  timeline: unknown[];
  [field: string]: unknown;
}

/** The review's filters: tenant, reason, signature, and UTC days (YYYY-MM-DD) from/to, inclusive. */
export interface QuarantineFilter {
  tenant?: string;
  reason?: string;
  signature?: string;
  from?: string;
  to?: string;
  limit?: number;
  cursor?: string;
}

export interface UserChanges {
  role?: AdminRole;
  tenantIds?: string[] | null;
  name?: string;
  disabled?: boolean;
}

/** One rescan run with its progress, as GET /v1/admin/rescans lists it. */
export interface RescanRunView {
  id: string;
  trigger: "signatures" | "operator";
  status: string;
  signatureVersion: string | null;
  tenantId: string | null;
  startedAt: string;
  finishedAt: string | null;
  counts: { queued: number; done: number; clean: number; matched: number; skipped: number; failed: number };
  remaining: number;
  [field: string]: unknown;
}

type Opts = { signal?: AbortSignal | undefined };

export interface IntakeAdminClientOptions {
  baseUrl: string;
  session: AdminSession;
  fetch?: typeof globalThis.fetch;
}

export class IntakeAdminClient {
  readonly baseUrl: string;
  readonly #session: AdminSession;
  readonly #fetch: typeof globalThis.fetch;

  constructor(o: IntakeAdminClientOptions) {
    this.baseUrl = o.baseUrl.replace(/\/+$/, "");
    this.#session = o.session;
    this.#fetch = o.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /**
   * Signs in with a password (POST /v1/admin/session). A wrong password, an unknown or
   * disabled account and an account that signs in only through OIDC all answer 401
   * invalid_credentials (details.oidc when the deployment offers OIDC sign-in).
   */
  static async signIn(baseUrl: string, email: string, password: string, o: Opts & { fetch?: typeof globalThis.fetch } = {}): Promise<{ session: AdminSession; admin: AdminPrincipalView }> {
    const f = o.fetch ?? globalThis.fetch;
    const res = await f(`${baseUrl.replace(/\/+$/, "")}/v1/admin/session`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ email, password }),
      redirect: "manual",
      ...(o.signal ? { signal: o.signal } : {}),
    });
    if (!res.ok) throw await apiError(res);
    const body = (await res.json()) as { admin: AdminPrincipalView; csrfToken: string; expiresAt: string };
    const token = cookieValue(res.headers.getSetCookie(), ADMIN_SESSION_COOKIE);
    if (!token || typeof body.csrfToken !== "string") throw new IntakeApiError(res.status, { code: "no_session", message: "the API answered the sign-in without a session cookie or CSRF token" });
    return { session: { token, csrfToken: body.csrfToken, expiresAt: body.expiresAt }, admin: body.admin };
  }

  /** Whose session this is (GET /v1/admin/session); 401 once it has ended. */
  async whoami(o: Opts = {}): Promise<AdminPrincipalView> {
    return (await this.#call<{ admin: AdminPrincipalView }>("GET", "/v1/admin/session", o)).admin;
  }

  /** Ends the session on the server (DELETE /v1/admin/session). */
  async signOut(o: Opts = {}): Promise<void> {
    await this.#call("DELETE", "/v1/admin/session", o);
  }

  async listUsers(o: Opts = {}): Promise<AdminUserView[]> {
    return (await this.#call<{ users: AdminUserView[] }>("GET", "/v1/admin/users", o)).users;
  }

  /** Without a password the API generates one and returns it here, once. */
  createUser(input: { email: string; role: AdminRole; name?: string; tenantIds?: string[] | null; password?: string }, o: Opts = {}): Promise<{ user: AdminUserView; password?: string }> {
    return this.#call("POST", "/v1/admin/users", { ...o, body: input });
  }

  async updateUser(id: string, changes: UserChanges, o: Opts = {}): Promise<AdminUserView> {
    return (await this.#call<{ user: AdminUserView }>("PATCH", `/v1/admin/users/${enc(id)}`, { ...o, body: changes })).user;
  }

  async listTenants(o: Opts = {}): Promise<TenantView[]> {
    return (await this.#call<{ tenants: TenantView[] }>("GET", "/v1/admin/tenants", o)).tenants;
  }

  async createTenant(input: { id: string; name?: string }, o: Opts = {}): Promise<TenantView> {
    return (await this.#call<{ tenant: TenantView }>("POST", "/v1/admin/tenants", { ...o, body: input })).tenant;
  }

  async listApiKeys(filter: { tenant?: string } = {}, o: Opts = {}): Promise<ApiKeyView[]> {
    const q = filter.tenant ? `?tenant=${enc(filter.tenant)}` : "";
    return (await this.#call<{ apiKeys: ApiKeyView[] }>("GET", `/v1/admin/api-keys${q}`, o)).apiKeys;
  }

  /** The key's secret is in `key`, here and never again. */
  createApiKey(input: { tenantId: string; name: string }, o: Opts = {}): Promise<{ key: string; apiKey: ApiKeyView }> {
    return this.#call("POST", "/v1/admin/api-keys", { ...o, body: input });
  }

  async revokeApiKey(id: string, o: Opts = {}): Promise<void> {
    await this.#call("DELETE", `/v1/admin/api-keys/${enc(id)}`, o);
  }

  /** One page of the quarantine review (newest first); nextCursor continues it. */
  listQuarantine(filter: QuarantineFilter = {}, o: Opts = {}): Promise<{ items: QuarantineRecordView[]; nextCursor: string | null }> {
    const q = new URLSearchParams({ format: "json" });
    for (const [k, v] of Object.entries(filter)) if (v !== undefined && v !== "") q.set(k, String(v));
    return this.#call("GET", `/v1/admin/quarantine?${q}`, o);
  }

  /** A tenant's policy (GET /v1/admin/tenants/:id/policy; admins only). */
  tenantPolicy(tenantId: string, o: Opts = {}): Promise<TenantPolicyView> {
    return this.#call("GET", `/v1/admin/tenants/${enc(tenantId)}/policy`, o);
  }

  /**
   * Replaces the terms a tenant overrides (PUT /v1/admin/tenants/:id/policy). With
   * `version` (the one last read) a change made meanwhile by someone else is refused
   * (409 policy_changed) instead of overwritten.
   */
  setTenantPolicy(tenantId: string, policy: TenantPolicy, o: Opts & { version?: number } = {}): Promise<TenantPolicyView> {
    return this.#call("PUT", `/v1/admin/tenants/${enc(tenantId)}/policy`, { ...o, body: policy, ...(o.version !== undefined ? { headers: { "if-match": `"${o.version}"` } } : {}) });
  }

  /** The recent rescan runs with their progress (GET /v1/admin/rescans), newest first. */
  async rescans(o: Opts = {}): Promise<RescanRunView[]> {
    return (await this.#call<{ runs: RescanRunView[] }>("GET", "/v1/admin/rescans", o)).runs;
  }

  async #call<T>(method: string, path: string, o: Opts & { body?: unknown; headers?: Record<string, string> }): Promise<T> {
    const headers: Record<string, string> = { ...o.headers, accept: "application/json", cookie: `${ADMIN_SESSION_COOKIE}=${this.#session.token}` };
    // The guard wants the session's CSRF token on every state-changing request.
    if (method !== "GET" && method !== "HEAD") headers["x-csrf-token"] = this.#session.csrfToken;
    if (o.body !== undefined) headers["content-type"] = "application/json";
    const res = await this.#fetch(this.baseUrl + path, {
      method,
      headers,
      redirect: "manual",
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    if (!res.ok) throw await apiError(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
}

const enc = encodeURIComponent;

/** A cookie's value from Set-Cookie headers (the last one set, as a browser would keep). */
function cookieValue(setCookies: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (const sc of setCookies) {
    const pair = sc.split(";", 1)[0]!;
    const eq = pair.indexOf("=");
    if (eq > 0 && pair.slice(0, eq).trim() === name) value = pair.slice(eq + 1).trim() || undefined;
  }
  return value;
}
