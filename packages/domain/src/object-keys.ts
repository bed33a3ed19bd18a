/**
 * Object keys are chosen by the server, never by the client: `{prefix}/{tenant}/{upload id}`.
 * The bucket's event notification is filtered to the pending prefix, so the pipeline's own
 * copies to verified/ and quarantine/ never come back as new-object events.
 */
export const PREFIX = { pending: "pending", verified: "verified", quarantine: "quarantine" } as const;
export type KeySpace = keyof typeof PREFIX;

export function objectKey(space: KeySpace, tenantId: string, uploadId: string): string {
  return `${PREFIX[space]}/${tenantId}/${uploadId}`;
}

/** The tenant and upload a pending key names, or null when the key is not one of ours. */
export function parsePendingKey(key: string): { tenantId: string; uploadId: string } | null {
  const m = /^pending\/([A-Za-z0-9_-]{1,64})\/([A-Za-z0-9_-]{1,64})$/.exec(key);
  return m ? { tenantId: m[1]!, uploadId: m[2]! } : null;
}

export function isPendingKey(key: string): boolean {
  return key.startsWith(`${PREFIX.pending}/`);
}
