/**
 * Errors of the domain. Each carries a stable `code` (what clients and logs match on) and a
 * `kind` (what sort of failure it is). Only the API's error middleware turns a kind into an
 * HTTP status, so the domain never knows about HTTP.
 */
export type ErrorKind =
  | "invalid" // the request is malformed or breaks a policy
  | "unauthenticated"
  | "forbidden" // authenticated, but this principal may not do or see this
  | "not_found"
  | "conflict" // the upload is not in a state that allows this
  | "too_large"
  | "limited" // a rate limit or quota is reached; the same request may succeed later
  | "unavailable" // a dependency could not be reached; retry later
  | "unsupported"; // a dependency lacks the operation altogether; retrying will not help

export class IntakeError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details?: Record<string, unknown>;
  constructor(kind: ErrorKind, code: string, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.kind = kind;
    this.code = code;
    this.details = details;
  }
}

export class InvalidRequestError extends IntakeError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super("invalid", code, message, details);
  }
}

/** An admin user whose role (or tenant scope) does not allow the action. */
export class ForbiddenError extends IntakeError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super("forbidden", code, message, details);
  }
}

export class UnauthenticatedError extends IntakeError {
  constructor(message = "a valid API key is required (Authorization: Bearer <key>)", code = "unauthenticated") {
    super("unauthenticated", code, message);
  }
}

export class NotFoundError extends IntakeError {
  constructor(what: string, id: string) {
    super("not_found", `${what}_not_found`, `${what} ${idInMessage(id)} does not exist`, { id: id.slice(0, MAX_ID_IN_MESSAGE) });
  }
}

/**
 * Ids come from URLs, decoded: a probe's NUL, line break, ANSI escape or bidi override would
 * ride into the message a UI or a terminal shows. Printable ASCII stays as it is (every id we
 * issue); anything else is JSON-quoted with each such character as \uXXXX (as
 * quoteForMessage in filename.ts, which imports this module, so it is not imported here).
 */
const MAX_ID_IN_MESSAGE = 100;
function idInMessage(id: string): string {
  const cut = id.slice(0, MAX_ID_IN_MESSAGE);
  if (/^[\x20-\x7e]*$/.test(cut)) return cut;
  return JSON.stringify(cut).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export class ConflictError extends IntakeError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super("conflict", code, message, details);
  }
}

export class PayloadTooLargeError extends IntakeError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super("too_large", code, message, details);
  }
}

/**
 * A rate limit or a quota is reached. `retryAfterSeconds` is when the same request can
 * succeed again, where that is known (a window that ends); a quota on open uploads frees
 * up only as they finish, so it has none.
 */
export class LimitExceededError extends IntakeError {
  readonly retryAfterSeconds?: number;
  constructor(code: string, message: string, details?: Record<string, unknown>, retryAfterSeconds?: number) {
    super("limited", code, message, details);
    if (retryAfterSeconds !== undefined) this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
  }
}

export class DependencyUnavailableError extends IntakeError {
  constructor(dependency: string, message: string, options?: { cause?: unknown }) {
    super("unavailable", `${dependency}_unavailable`, message, { dependency }, options);
  }
}
