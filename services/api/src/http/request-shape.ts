import type { IncomingMessage } from "node:http";
import * as z from "zod";
import { InvalidRequestError, quoteForMessage } from "@intake/domain";
import { readJsonObject } from "./json-body.ts";

/**
 * A request's shape checked with its @intake/contract schema (the one the OpenAPI document
 * is generated from), and a wrong shape turned into our 400: the code of the field at fault
 * (the contract's `*_ERRORS` table for that schema), a message naming the field. An unknown
 * field is reported before anything else, as `unknown_field`, as it always was: a typo must
 * not be answered as if the field it meant were missing.
 *
 * The value handed on is the one the client sent, not zod's copy of it: zod drops a
 * `__proto__` key from a record, and the domain (which checks the policy next) must see
 * every key there is (metadata keys are its rule, and `__proto__` is not one it allows).
 */
export type ErrorCodes = Readonly<Record<string, string>>;

export function checkShape<S extends z.ZodType>(schema: S, value: unknown, codes: ErrorCodes, where: "body" | "query" = "body"): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw shapeError(schema, result.error.issues, codes, where);
}

/** Reads a JSON object body (json-body.ts: limits, media type, UTF-8) and checks its shape. */
export async function readBody<S extends z.ZodType<Record<string, unknown>>>(req: IncomingMessage, limitBytes: number, schema: S, codes: ErrorCodes): Promise<z.output<S>> {
  const json = await readJsonObject(req, limitBytes);
  checkShape(schema, json, codes);
  return json as z.output<S>;
}

function shapeError(schema: z.ZodType, issues: readonly z.core.$ZodIssue[], codes: ErrorCodes, where: string): InvalidRequestError {
  const unknown = issues.find((i): i is z.core.$ZodIssueUnrecognizedKeys => i.code === "unrecognized_keys");
  if (unknown) {
    const field = unknown.keys[0]!;
    const place = unknown.path.length === 0 ? where : `${pathLabel(unknown.path, true)}`;
    const allowed = unknown.path.length === 0 && schema instanceof z.ZodObject ? { allowed: Object.keys(schema.shape) } : {};
    return new InvalidRequestError("unknown_field", `unknown field ${quoteForMessage(field, 100)} in ${place}`, { field: field.slice(0, 100), ...allowed });
  }
  const issue = issues[0]!;
  // A record's key: zod reports "invalid key" around the key schema's own issue, which has our message.
  const message = issue.code === "invalid_key" && issue.issues[0] ? issue.issues[0].message : issue.message;
  const label = pathLabel(issue.path, false);
  const nested = issue.path.length > 1 ? ` (at ${quoteForMessage(label, 120)})` : "";
  return new InvalidRequestError(codeFor(issue.path, codes), `${message}${nested}`, { field: label.slice(0, 120) });
}

/** The code of the most specific entry of the table that covers the path ("parts[].md5", then "parts[]", then "parts"). */
function codeFor(path: readonly PropertyKey[], codes: ErrorCodes): string {
  // Own entries only: a path can hold a client's key ("constructor", "toString"), and the
  // table's prototype would answer those with a function instead of a code.
  const own = (label: string) => (Object.hasOwn(codes, label) ? codes[label] : undefined);
  for (let n = path.length; n > 0; n--) {
    const label = pathLabel(path.slice(0, n), true);
    const code = own(label) ?? own(label.replace(/\[\]$/, ""));
    if (code) return code;
  }
  return "invalid_request";
}

/** ["parts", 2, "md5"] -> "parts[2].md5" (or "parts[].md5" when indexes are generic). */
function pathLabel(path: readonly PropertyKey[], generic: boolean): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += generic ? "[]" : `[${segment}]`;
    else out += out ? `.${String(segment)}` : String(segment);
  }
  return out;
}
