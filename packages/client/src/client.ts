import { IntakeApiError } from "./errors.ts";
import { webDigests, type Digests } from "./digests.ts";
import { runUpload, type UploadOptions, type UploadOutcome } from "./upload.ts";
import type { UploadSource } from "./sources.ts";
import { waitForVerdict, type Verdict, type WaitOptions } from "./verdict.ts";
import type {
  CompletedPart,
  CreateUploadInput,
  CreateUploadSessionInput,
  DownloadUrl,
  ErrorBody,
  ListUploadsQuery,
  SignedPart,
  SignPartsInput,
  StoredPart,
  Upload,
  UploadCreated,
  UploadPage,
  UploadSession,
  UploadSessionMinted,
} from "./types.ts";

export interface IntakeClientOptions {
  /** The API's base URL, e.g. https://intake.example.com */
  baseUrl: string;
  /** An application's API key (ik_live_...), for backends. */
  apiKey?: string;
  /** An upload session's token, for browsers (minted by the application's backend). */
  sessionToken?: string;
  /** A fetch to use instead of the global one (tests, instrumentation, proxies). */
  fetch?: typeof fetch;
  /** Checksum implementation; the Node entry passes node:crypto's. */
  digests?: Digests;
  /**
   * The API's MULTIPART_THRESHOLD_BYTES as far as the client knows (default: the API's
   * default, 100 MiB). Used only to decide whether to declare an MD5 (single PUT only) and
   * whether a stream is small enough to hold in memory for its checksums; the API's answer
   * decides single or multipart.
   */
  multipartThresholdBytes?: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/**
 * A typed client of the Intake API: one method per public endpoint, plus upload() (single
 * PUT or multipart as the API decides) and waitForVerdict() (a long-poll loop). Works with
 * the global fetch in Node 24 and in browsers; nothing here imports Node modules.
 */
export class IntakeClient {
  readonly baseUrl: string;
  readonly digests: Digests;
  readonly multipartThresholdBytes: number;
  /** The fetch used for storage requests (presigned URLs) as well as API calls. */
  readonly fetch: typeof fetch;
  readonly #credential: string;

  constructor(o: IntakeClientOptions) {
    const credential = o.apiKey ?? o.sessionToken;
    if (!credential) throw new TypeError("IntakeClient needs apiKey or sessionToken");
    this.baseUrl = o.baseUrl.replace(/\/+$/, "");
    this.#credential = credential;
    this.fetch = o.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.digests = o.digests ?? webDigests;
    this.multipartThresholdBytes = o.multipartThresholdBytes ?? 100 * 1024 * 1024;
  }

  /** POST /v1/uploads */
  createUpload(input: CreateUploadInput, o: RequestOptions & { idempotencyKey?: string } = {}): Promise<UploadCreated> {
    return this.#call("POST", "/v1/uploads", { body: input, signal: o.signal, headers: o.idempotencyKey ? { "idempotency-key": o.idempotencyKey } : {} });
  }

  /** POST /v1/upload-sessions (API key only): a short-lived token for a browser. */
  createUploadSession(input: CreateUploadSessionInput = {}, o: RequestOptions = {}): Promise<UploadSessionMinted> {
    return this.#call("POST", "/v1/upload-sessions", { body: input, signal: o.signal });
  }

  /** DELETE /v1/upload-sessions/:id: its token stops at once. */
  async revokeUploadSession(id: string, o: RequestOptions = {}): Promise<UploadSession> {
    return (await this.#call<{ session: UploadSession }>("DELETE", `/v1/upload-sessions/${enc(id)}`, { signal: o.signal })).session;
  }

  /** POST /v1/uploads/:id/parts */
  async signParts(id: string, input: SignPartsInput, o: RequestOptions = {}): Promise<SignedPart[]> {
    return (await this.#call<{ parts: SignedPart[] }>("POST", `/v1/uploads/${enc(id)}/parts`, { body: input, signal: o.signal })).parts;
  }

  /** GET /v1/uploads/:id/parts: the parts storage holds (to resume). */
  async listParts(id: string, o: RequestOptions = {}): Promise<StoredPart[]> {
    return (await this.#call<{ parts: StoredPart[] }>("GET", `/v1/uploads/${enc(id)}/parts`, { signal: o.signal })).parts;
  }

  /** POST /v1/uploads/:id/complete (parts: multipart only). */
  async complete(id: string, parts?: CompletedPart[], o: RequestOptions = {}): Promise<Upload> {
    return (await this.#call<{ upload: Upload }>("POST", `/v1/uploads/${enc(id)}/complete`, { body: parts ? { parts } : {}, signal: o.signal })).upload;
  }

  /** DELETE /v1/uploads/:id */
  async abort(id: string, o: RequestOptions = {}): Promise<Upload> {
    return (await this.#call<{ upload: Upload }>("DELETE", `/v1/uploads/${enc(id)}`, { signal: o.signal })).upload;
  }

  /** GET /v1/uploads/:id; with `wait` (seconds, at most 20) a long-poll that answers once the status is terminal. */
  async get(id: string, o: RequestOptions & { wait?: number } = {}): Promise<Upload> {
    const q = o.wait ? `?wait=${o.wait}` : "";
    return (await this.#call<{ upload: Upload }>("GET", `/v1/uploads/${enc(id)}${q}`, { signal: o.signal })).upload;
  }

  /** GET /v1/uploads, newest first. */
  list(q: ListUploadsQuery = {}, o: RequestOptions = {}): Promise<UploadPage> {
    const params = new URLSearchParams();
    if (q.status) params.set("status", q.status);
    if (q.limit !== undefined) params.set("limit", String(q.limit));
    if (q.cursor) params.set("cursor", q.cursor);
    const qs = params.size ? `?${params}` : "";
    return this.#call("GET", `/v1/uploads${qs}`, { signal: o.signal });
  }

  /**
   * GET /v1/uploads/:id/download without following the redirect: the short presigned GET
   * (verified uploads only). In browsers a manual redirect is opaque, so there use the body
   * the API sends with the 302 through a same-origin proxy, or link to the API route.
   */
  async downloadUrl(id: string, o: RequestOptions = {}): Promise<DownloadUrl> {
    const res = await this.#send("GET", `/v1/uploads/${enc(id)}/download`, { signal: o.signal, redirect: "manual" });
    if (res.status === 302) return (await res.json()) as DownloadUrl;
    throw await apiError(res);
  }

  /** Uploads bytes: declares the upload, sends them straight to storage, completes it. */
  upload(source: UploadSource, o: UploadOptions): Promise<UploadOutcome> {
    return runUpload(this, source, o);
  }

  /** Continues an interrupted multipart upload: parts storage holds (same size and, where it can be checked, same MD5) are skipped. */
  resumeUpload(uploadId: string, source: UploadSource, o: Omit<UploadOptions, "filename" | "contentType" | "metadata"> & Partial<Pick<UploadOptions, "filename" | "contentType">>): Promise<UploadOutcome> {
    return runUpload(this, source, { filename: "", contentType: "", ...o, resumeUploadId: uploadId });
  }

  /** Resolves once the upload is verified or quarantined, by long-polling GET /v1/uploads/:id?wait. */
  waitForVerdict(id: string, o: WaitOptions = {}): Promise<Verdict> {
    return waitForVerdict(this, id, o);
  }

  async #call<T>(method: string, path: string, o: { body?: unknown; signal?: AbortSignal | undefined; headers?: Record<string, string> }): Promise<T> {
    const res = await this.#send(method, path, o);
    if (!res.ok) throw await apiError(res);
    return (await res.json()) as T;
  }

  #send(method: string, path: string, o: { body?: unknown; signal?: AbortSignal | undefined; headers?: Record<string, string>; redirect?: "manual" | "follow" }): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#credential}`, accept: "application/json", ...o.headers };
    if (o.body !== undefined) headers["content-type"] = "application/json";
    return this.fetch(this.baseUrl + path, {
      method,
      headers,
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.redirect ? { redirect: o.redirect } : {}),
    });
  }
}

const enc = encodeURIComponent;

/** The API's error body as an IntakeApiError (a proxy's page becomes http_<status>). */
export async function apiError(res: Response): Promise<IntakeApiError> {
  const retryAfter = Number(res.headers.get("retry-after"));
  const ra = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined;
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as ErrorBody;
    if (body?.error && typeof body.error.code === "string") return new IntakeApiError(res.status, body.error, ra);
  } catch {
    // not JSON: a proxy or a load balancer answered
  }
  return new IntakeApiError(res.status, { code: `http_${res.status}`, message: `the API answered ${res.status} ${res.statusText}`.trim() }, ra);
}
