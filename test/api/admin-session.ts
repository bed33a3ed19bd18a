import { AdminSessionRepository, AdminUserRepository, type AdminUser } from "@intake/db";
import type { AdminRole } from "@intake/domain";
import type { ApiUnderTest } from "./harness.ts";

/**
 * A signed-in admin for tests of the admin surfaces: a user created in the API's database
 * and a session started for it the way sign-in starts one, so the test holds exactly what a
 * browser would (the cookie and the page's CSRF token). Sign-in itself is tested elsewhere.
 */
export interface AdminClient {
  user: AdminUser;
  cookie: string;
  csrfToken: string;
  /** A request with the session cookie; state-changing ones carry the CSRF token unless `csrf: false`. */
  request(method: string, path: string, o?: { json?: unknown; form?: Record<string, string>; csrf?: boolean; headers?: Record<string, string> }): Promise<Response>;
}

let counter = 0;

export async function signInAs(api: Pick<ApiUnderTest, "url" | "database" | "config">, role: AdminRole, o: { tenantIds?: string[]; email?: string; name?: string } = {}): Promise<AdminClient> {
  const users = new AdminUserRepository(api.database.db);
  const sessions = new AdminSessionRepository(api.database.db);
  const user = await users.create({ email: o.email ?? `${role}-${process.pid}-${++counter}@example.test`, name: o.name ?? `${role} ${counter}`, role, tenantIds: o.tenantIds ?? null });
  const session = await sessions.start(user.id, "password", api.config.admin.sessionTtlSeconds);
  const cookie = `intake_admin=${session.token}`;
  return {
    user,
    cookie,
    csrfToken: session.csrfToken,
    request: (method, path, r = {}) => {
      const headers: Record<string, string> = { cookie, ...r.headers };
      let body: string | undefined;
      if (r.json !== undefined) {
        body = JSON.stringify(r.json);
        headers["content-type"] = "application/json";
        if (r.csrf !== false) headers["x-csrf-token"] = session.csrfToken;
      } else if (r.form) {
        body = new URLSearchParams({ ...(r.csrf === false ? {} : { _csrf: session.csrfToken }), ...r.form }).toString();
        headers["content-type"] = "application/x-www-form-urlencoded";
      } else if (r.csrf !== false && !["GET", "HEAD"].includes(method)) {
        headers["x-csrf-token"] = session.csrfToken;
      }
      return fetch(api.url + path, { method, headers, body, redirect: "manual" });
    },
  };
}
