import type { Context, Next } from "koa";
import { IntakeError, LimitExceededError, type ErrorKind } from "@intake/domain";
import type { Logger } from "@intake/runtime";

/**
 * The one place where failures become HTTP responses. Domain and adapter errors carry a
 * `kind`; the status is decided here and nowhere else. Anything that is not one of ours
 * is a 500 whose body says nothing about the cause: stacks and SDK messages can quote
 * request URLs (presigned, so secret) or connection strings.
 */
export const STATUS_BY_KIND: Record<ErrorKind, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  limited: 429,
  unavailable: 503,
  unsupported: 501,
};

/** Failures that only exist at the HTTP layer (wrong media type, wrong method). */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details?: Record<string, unknown>;
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export interface ErrorResponse {
  status: number;
  body: ErrorBody;
}

export function errorResponse(err: unknown): ErrorResponse {
  if (err instanceof IntakeError) {
    const status = STATUS_BY_KIND[err.kind] ?? 500;
    return { status, body: body(err.code, err.message, err.details) };
  }
  if (err instanceof HttpError) {
    return { status: err.status, body: body(err.code, err.message, err.details) };
  }
  return { status: 500, body: body("internal_error", "an internal error occurred; it has been logged") };
}

function body(code: string, message: string, details?: Record<string, unknown>): ErrorBody {
  return details === undefined ? { error: { code, message } } : { error: { code, message, details } };
}

/** Koa middleware: first in the chain, so it sees every error thrown below it. */
export function errorMiddleware(logger: Logger) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500 && status !== 501 && status !== 503) {
        // Only the error itself, never the request: the logger scrubs signatures from
        // messages, but the request's headers are not ours to log at all.
        logger.error({ err, requestId: ctx.state.requestId, route: routeOf(ctx) }, "request failed");
      } else if (status === 503) {
        logger.warn({ code: body.error.code, requestId: ctx.state.requestId, route: routeOf(ctx), cause: causeOf(err) }, "dependency unavailable");
      }
      ctx.status = status;
      ctx.body = body;
      if (status === 401) ctx.set("WWW-Authenticate", 'Bearer realm="intake"');
      // RFC 9110 10.2.3: seconds until the same request may succeed (a window's end).
      if (err instanceof LimitExceededError && err.retryAfterSeconds !== undefined) ctx.set("Retry-After", String(err.retryAfterSeconds));
      if (err instanceof HttpError && err.status === 405 && Array.isArray(err.details?.allowed)) {
        ctx.set("Allow", (err.details.allowed as string[]).join(", "));
      }
    }
  };
}

function causeOf(err: unknown): string | undefined {
  const cause = (err as { cause?: { name?: string; code?: string } }).cause;
  return cause ? String(cause.code ?? cause.name) : undefined;
}

/** The route pattern (/v1/uploads/:id), not the concrete path: ids stay out of metrics. */
export function routeOf(ctx: Context): string {
  const matched = (ctx as Context & { _matchedRoute?: string | RegExp })._matchedRoute;
  return matched ? String(matched) : "(unmatched)";
}
