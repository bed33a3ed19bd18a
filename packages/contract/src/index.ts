/**
 * @intake/contract: the API's wire schemas (zod 4), the one source of the API's request
 * validation (shape; policy is the domain's), the OpenAPI document's component schemas and
 * the SDK's types (which import them as types only: no zod in a browser bundle).
 */
import type * as z from "zod";
import type { UploadSessionView, UploadView } from "@intake/domain";
import type { Upload, UploadSession } from "./index.ts";

export * from "./fields.ts";
export * from "./uploads.ts";
export * from "./sessions.ts";
export * from "./errors.ts";
export * from "./health.ts";
export * from "./openapi-schemas.ts";

/**
 * The domain's views are what the API answers with (uploadView, sessionView, and the
 * webhooks' data); the schemas describe them. These fail to compile when the two differ,
 * a field missing, extra or of another type on either side.
 */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree = <T extends true>(): T => true as T;
export const CONTRACT_MATCHES_DOMAIN = [agree<Same<z.output<typeof Upload>, UploadView>>(), agree<Same<z.output<typeof UploadSession>, UploadSessionView>>()] as const;
