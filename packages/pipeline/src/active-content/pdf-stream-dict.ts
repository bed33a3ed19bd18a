/**
 * What a PDF stream's dictionary says about reading the stream: the entries that matter
 * (the tokenizer keeps only these) and whether an object stream can be decoded here.
 */
export const MAX_WORD = 16;
/** The stream dictionary entries that decide how a stream is read (lower case, as names are kept). */
export const STREAM_KEYS = new Set(["type", "first", "filter", "decodeparms", "f", "dp"]);
export const KEY_LENGTHS = new Uint8Array(MAX_WORD + 1);
export const KEY_FIRSTS = new Uint8Array(256);
for (const k of STREAM_KEYS) {
  KEY_LENGTHS[k.length] = 1;
  KEY_FIRSTS[k.charCodeAt(0)] = 1;
}

/** Set in a dictionary's entries when one of STREAM_KEYS appears twice (no name can be it: it is not in STREAM_KEYS). */
export const DUPLICATE_KEY = "#duplicate";

/** Why an object stream's dictionary keeps its objects from being read, or null. */
export function objectStreamRefusal(dict: Map<string, string[]>): string | null {
  const repeated = dict.get(DUPLICATE_KEY)?.[0];
  if (repeated !== undefined) return `with /${repeated === "decodeparms" ? "DecodeParms" : repeated[0]!.toUpperCase() + repeated.slice(1)} twice (readers differ on which one counts)`;
  // pdf.js also reads /DP and /F (the inline-image abbreviations) on streams; /F is an
  // external file's specification in ISO 32000. Either way the bytes here are not the objects.
  if (dict.has("decodeparms") || dict.has("dp")) return "with /DecodeParms (a predictor would hide its names)";
  if (dict.has("f")) return "with /F (an external file, or a filter abbreviation)";
  const filter = dict.get("filter");
  if (filter === undefined) return null;
  const names = filter[0] === "[" && filter.at(-1) === "]" ? filter.slice(1, -1) : filter;
  // "/Fl" is FlateDecode's abbreviation (inline images), which pdf.js accepts on streams too.
  if (names.length === 1 && (names[0] === "/flatedecode" || names[0] === "/fl")) return null;
  return `with filter ${filter.join(" ") || "(empty)"} (only FlateDecode is decoded)`;
}
