import type { Upload } from "./upload.ts";

/**
 * The image formats whose metadata the pipeline strips, by the type their magic bytes name
 * (file-type's answer, recorded as sniffedType): the bytes decide, not the declared type,
 * so a photo declared as anything else still loses its GPS position. APNG is a PNG to the
 * image library (it reads the default image): stripping it keeps one frame, which is the
 * price of never serving its metadata.
 */
const STRIPPED_AS = {
  "image/jpeg": "jpeg",
  "image/png": "png",
  "image/apng": "png",
  "image/webp": "webp",
} as const;

export type StrippedImageFormat = (typeof STRIPPED_AS)[keyof typeof STRIPPED_AS];

/**
 * The one answer to "is this upload's image metadata to be stripped, and as what": its
 * recorded policy asks for it (stripImageMetadata, set at create) and its bytes are a JPEG,
 * PNG or WebP. null: the upload is promoted byte for byte.
 */
export function imageToStrip(upload: Pick<Upload, "stripImageMetadata" | "sniffedType">): StrippedImageFormat | null {
  if (!upload.stripImageMetadata || !upload.sniffedType) return null;
  return Object.hasOwn(STRIPPED_AS, upload.sniffedType) ? STRIPPED_AS[upload.sniffedType as keyof typeof STRIPPED_AS] : null;
}
