/**
 * A cookie-keeping HTTP client for the admin sign-in tests: what a browser without
 * JavaScript does (keeps cookies per host, posts forms with their hidden fields), with
 * redirects left to the test so each hop can be looked at.
 */
export interface Hop {
  status: number;
  headers: Headers;
  text: string;
  url: string;
}

export class CookieClient {
  /** host -> name -> value */
  readonly jar = new Map<string, Map<string, string>>();
  /** Every Set-Cookie header seen, as written. */
  readonly setCookies: string[] = [];
  private readonly extraHeaders: Record<string, string>;

  constructor(extraHeaders: Record<string, string> = {}) {
    this.extraHeaders = extraHeaders;
  }

  cookie(url: string, name: string): string | undefined {
    return this.jar.get(new URL(url).host)?.get(name);
  }

  setCookie(url: string, name: string, value: string): void {
    const host = new URL(url).host;
    if (!this.jar.has(host)) this.jar.set(host, new Map());
    this.jar.get(host)!.set(name, value);
  }

  async request(method: string, url: string, o: { form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Hop> {
    const host = new URL(url).host;
    const cookies = [...(this.jar.get(host) ?? new Map()).entries()].map(([k, v]) => `${k}=${v}`).join("; ");
    const headers: Record<string, string> = { accept: "text/html", ...this.extraHeaders, ...o.headers };
    if (cookies) headers.cookie = cookies;
    let body: string | undefined;
    if (o.form) {
      body = new URLSearchParams(o.form).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
    const res = await fetch(url, { method, headers, body, redirect: "manual" });
    for (const sc of res.headers.getSetCookie()) {
      this.setCookies.push(sc);
      const [pair, ...attrs] = sc.split(";");
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (!this.jar.has(host)) this.jar.set(host, new Map());
      if (expired || value === "") this.jar.get(host)!.delete(name);
      else this.jar.get(host)!.set(name, value);
    }
    return { status: res.status, headers: res.headers, text: await res.text(), url };
  }

  get(url: string, headers?: Record<string, string>): Promise<Hop> {
    return this.request("GET", url, headers ? { headers } : {});
  }

  /** Follows redirects (and a meta refresh) from a response until one that is neither. */
  async follow(hop: Hop, limit = 15): Promise<Hop> {
    let h = hop;
    for (let i = 0; i < limit; i++) {
      const location = h.headers.get("location");
      const refresh = /<meta http-equiv="refresh" content="0;url=([^"]+)">/.exec(h.text)?.[1];
      const next = location ?? (refresh ? decodeEntities(refresh) : undefined);
      if (!next || !(h.status >= 300 && h.status < 400) && !refresh) return h;
      h = await this.get(new URL(next, h.url).href);
    }
    throw new Error(`more than ${limit} redirects from ${hop.url}`);
  }
}

/** A hidden or text field's value in a page. */
export function fieldOf(html: string, name: string): string | undefined {
  const m = new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`).exec(html) ?? new RegExp(`<input[^>]*value="([^"]*)"[^>]*name="${name}"`).exec(html);
  return m ? decodeEntities(m[1]!) : undefined;
}

export function decodeEntities(s: string): string {
  return s.replace(/&amp;/g, "&").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&#x2F;/g, "/");
}

/** Signs in through the real form: GET the page (pre-session token), POST it. */
export async function signInWithPassword(client: CookieClient, apiUrl: string, email: string, password: string, o: { next?: string; headers?: Record<string, string> } = {}): Promise<Hop> {
  const page = await client.get(`${apiUrl}/admin/login${o.next ? `?next=${encodeURIComponent(o.next)}` : ""}`, o.headers);
  const token = fieldOf(page.text, "_csrf");
  if (!token) throw new Error(`no CSRF field on the sign-in page (status ${page.status})`);
  return client.request("POST", `${apiUrl}/admin/login`, { form: { _csrf: token, email, password, next: fieldOf(page.text, "next") ?? "/admin" }, ...(o.headers ? { headers: o.headers } : {}) });
}
