/**
 * The CSS an SVG may carry, in a <style> element, a style attribute or a presentation
 * attribute (fill="...", which browsers parse as a CSS value). CSS cannot run script in a
 * current browser, but it can fetch: url() in any property, @import, @font-face src,
 * image-set("http://...") with a bare string, and old engines ran expression() (IE),
 * behavior: url() (IE) and -moz-binding: url() (Firefox XBL). A fetch from an image the
 * user opened is a tracking beacon or a way to pull in content we never checked.
 *
 * So the subset allowed is:
 * - no at-rules at all (no '@': @import, @font-face, @namespace, @media, @keyframes);
 * - no backslash: CSS escapes can spell any name (\75 rl( is url(, \@import), so a check on
 *   names would be a check on the spelling; no real editor writes escapes into SVG styles;
 * - functions only from FUNCTIONS (colours, transforms, filters, calc, shapes), and url()
 *   only to a same-document fragment, url(#id) (quoted or not);
 * - strings and comments are skipped as the CSS tokenizer does (a "/*" inside a string
 *   opens no comment, so a url() between two such strings is still seen), and an
 *   unterminated one is refused.
 * Properties are not allowlisted: with fetching and escapes gone no property can do
 * anything but paint, and editors write many vendor properties (-inkscape-font-specification).
 */
const FUNCTIONS: ReadonlySet<string> = new Set([
  "url", "rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "color", "icc-color",
  "calc", "min", "max", "clamp", "var",
  "translate", "translatex", "translatey", "rotate", "scale", "scalex", "scaley", "skew", "skewx", "skewy", "matrix",
  "blur", "brightness", "contrast", "drop-shadow", "grayscale", "hue-rotate", "invert", "opacity", "saturate", "sepia",
  "inset", "circle", "ellipse", "polygon", "path", "rect", "xywh",
]);

/** A same-document fragment: what url() and href may point at. */
export const FRAGMENT = /^#[A-Za-z_][A-Za-z0-9_.:-]*$/;

const IDENT_START = /[A-Za-z_\-\u0080-\uffff]/;
const IDENT_CHAR = /[A-Za-z0-9_\-\u0080-\uffff]/;
const SPACE = /[ \t\n\r\f]/;

/** The first thing in this CSS text outside the subset above, or null. */
export function cssProblem(css: string): string | null {
  // Anywhere, strings included: an escaped quote would end a string later for the browser
  // than for this scanner, and what the browser reads as code would pass here as a string.
  if (css.includes("\\")) return "a CSS escape (backslash)";
  // Without '(' there is no function (so no url()) and without '@' no at-rule: nothing
  // left that could fetch, whatever the strings and comments look like. Most attribute
  // values (path data, numbers, colours) end here.
  if (!css.includes("(") && !css.includes("@")) return null;
  const n = css.length;
  let i = 0;
  while (i < n) {
    const c = css[i]!;
    if (c === "@") return `a CSS at-rule (${JSON.stringify(css.slice(i, i + 20))})`;
    if (c === "/" && css[i + 1] === "*") {
      const end = css.indexOf("*/", i + 2);
      if (end === -1) return "an unterminated CSS comment";
      i = end + 2;
      continue;
    }
    if (c === '"' || c === "'") {
      const end = stringEnd(css, i);
      if (end === -1) return "an unterminated CSS string";
      i = end;
      continue;
    }
    if (IDENT_START.test(c)) {
      let j = i + 1;
      while (j < n && IDENT_CHAR.test(css[j]!)) j++;
      if (css[j] === "(") {
        // CSS function names are ASCII case-insensitive (URL( is url().
        const name = css.slice(i, j).toLowerCase();
        if (!FUNCTIONS.has(name)) return `the CSS function ${JSON.stringify(css.slice(i, j))}()`;
        if (name === "url") {
          const arg = urlArgument(css, j + 1);
          if (arg === null) return "a malformed CSS url()";
          if (!FRAGMENT.test(arg.value)) return `url(${JSON.stringify(arg.value.slice(0, 80))}): only url(#id) to this document is allowed`;
          i = arg.end;
          continue;
        }
      }
      i = j;
      continue;
    }
    i++;
  }
  return null;
}

/** Index just past the string opened at `start`, or -1 (a CSS string may not span lines). */
function stringEnd(css: string, start: number): number {
  const quote = css[start]!;
  for (let i = start + 1; i < css.length; i++) {
    const c = css[i]!;
    if (c === quote) return i + 1;
    if (c === "\n" || c === "\r" || c === "\f") return -1;
  }
  return -1;
}

/** The argument of a url( whose content starts at `from` (quoted or not), and the index after its ")". */
function urlArgument(css: string, from: number): { value: string; end: number } | null {
  let i = from;
  while (i < css.length && SPACE.test(css[i]!)) i++;
  let value: string;
  if (css[i] === '"' || css[i] === "'") {
    const end = stringEnd(css, i);
    if (end === -1) return null;
    value = css.slice(i + 1, end - 1);
    i = end;
  } else {
    const close = css.indexOf(")", i);
    if (close === -1) return null;
    value = css.slice(i, close).trimEnd();
    i = close;
  }
  while (i < css.length && SPACE.test(css[i]!)) i++;
  return css[i] === ")" ? { value, end: i + 1 } : null;
}
