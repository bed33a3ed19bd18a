import { CONFIG_VARIABLES } from "@intake/runtime";

/**
 * What a deployment file may set on an Intake process: the variables the configuration
 * schema reads (CONFIG_VARIABLES, from packages/runtime/src/config.ts), and the few the AWS
 * SDK's default credential chain reads itself (the config carries no credentials).
 */
export const AWS_SDK_VARIABLES = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] as const;
export const ACCEPTED_VARIABLES = new Set<string>([...CONFIG_VARIABLES, ...AWS_SDK_VARIABLES]);

/** Names that hold secrets: their values may never be written into a deployment file. */
export const SECRET_NAME = /(PASSWORD|SECRET|TOKEN|PRIVATE|(^|_)KEY($|_))/i;

/** Variables set on an Intake process that it does not read (a typo, a removed option). */
export function unknownVariables(names: Iterable<string>): string[] {
  return [...names].filter((n) => !ACCEPTED_VARIABLES.has(n));
}
