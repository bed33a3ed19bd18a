import { FRAGMENT } from "./svg-css.ts";

/**
 * What an SVG's references may point at. Values arrive here as the XML parser delivers
 * them, character references already decoded (javascript&#58; is javascript:, &#x6A; is j),
 * which is what a browser sees too.
 */

/**
 * A browser's URL parser drops ASCII tab and newline anywhere in a URL and C0 controls and
 * spaces around it, and schemes are case-insensitive: "java\tscript:", " JavaScript:" and
 * "jav&#x0A;ascript:" all run. The check therefore removes every whitespace and control
 * character before it looks, which also flags such a string in any other attribute (an
 * inert label that says "javascript:" is refused too: fail closed).
 */
const IGNORED_IN_URL = /[\u0000-\u0020\u007f-\u009f\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f\u3000\ufeff]+/g;
const SCRIPT_URL = /(?:java|vb|live)script:|data:(?:text\/html|application\/(?:xhtml\+)?xml|text\/xml|image\/svg\+xml)/;

/** The script-capable URL scheme this value contains, or null. */
export function scriptUrlIn(value: string): string | null {
  if (!value.includes(":")) return null; // every scheme ends in one, and nothing removed below is one
  const m = SCRIPT_URL.exec(value.replace(IGNORED_IN_URL, "").toLowerCase());
  return m ? m[0] : null;
}

/**
 * A raster image as a data: URI: only PNG, JPEG, GIF and WebP in base64 (whitespace
 * allowed between the base64 characters, as Inkscape writes it). Not SVG (an SVG inside an
 * SVG is a second document this check never looked at) and not anything that can script.
 */
const RASTER_DATA_URI = /^data:image\/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$/i;

/**
 * Why this href (or xlink:href) is refused, or null. Only a same-document fragment (#id)
 * is allowed, and on <image>/<feImage> also a raster data: URI: anything else makes the
 * browser, or a converter, fetch something nobody checked (http:, file:, another SVG, a
 * relative path resolved against wherever the image is served).
 */
export function hrefProblem(value: string, allowRasterData: boolean): string | null {
  if (FRAGMENT.test(value)) return null;
  if (allowRasterData && RASTER_DATA_URI.test(value)) return null;
  const shown = JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
  return allowRasterData
    ? `${shown} is neither a same-document fragment (#id) nor a base64 PNG, JPEG, GIF or WebP data: URI`
    : `${shown} is an external reference: only a same-document fragment (#id) is allowed`;
}
