import { extname } from "node:path";

/**
 * Content types guessed from a file's extension, for the types the API accepts by default
 * (DEFAULT_ALLOWED_TYPES in @intake/runtime). A table rather than a MIME library: the API
 * takes only its allowlist anyway and the pipeline checks the bytes against the declared
 * type, so a guess outside the allowlist would only turn into a refusal; --type covers the
 * rest.
 */
const BY_EXTENSION: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".txt": "text/plain",
  ".md": "text/plain",
  ".log": "text/plain",
  ".csv": "text/csv",
  ".json": "application/json",
  ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
};

export function guessContentType(file: string): string | undefined {
  return BY_EXTENSION[extname(file).toLowerCase()];
}
