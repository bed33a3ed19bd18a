import * as z from "zod";

/** Every error answer of the API (services/api/src/http/errors.ts writes it). */
export const ErrorBody = z.strictObject({
  error: z.strictObject({
    code: z.string().meta({ description: "Stable, machine-readable (invalid_size, upload_not_found, ...)" }),
    message: z.string().meta({ description: "For people; names the field or the rule" }),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
