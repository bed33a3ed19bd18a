/**
 * What an SVG upload may contain: an allowlist, so that anything a browser (or an XML tool
 * on the way) could treat as active and that we did not think of is refused by default.
 * Names are matched exactly: XML is case-sensitive, and a browser only gives meaning to
 * the exact names in the exact namespace (an <SCRIPT> or an <svg:Script> is not a script,
 * and not on this list either, so it is refused as unknown rather than waved through).
 */
export const SVG_NS = "http://www.w3.org/2000/svg";
export const XLINK_NS = "http://www.w3.org/1999/xlink";
export const XML_NS = "http://www.w3.org/XML/1998/namespace";
export const XMLNS_NS = "http://www.w3.org/2000/xmlns/";

/**
 * SVG 1.1 / SVG 2 elements that draw, group, define paint servers, clip, mask or filter.
 * Left out on purpose:
 * - script, foreignObject (embeds HTML), a (navigation), animate, set, animateTransform,
 *   animateMotion, animateColor, mpath, discard: animation is refused altogether, since
 *   SMIL can rewrite href or event attributes at run time (attributeName="href" with
 *   values="javascript:..."), and refusing it is simpler to prove than vetting each target;
 * - elements that reference outside resources by design: tref, altGlyph, color-profile,
 *   cursor, font-face-uri and SVG fonts, iframe/video/audio/canvas (SVG 2 HTML aliases);
 * - view, hatch, solidcolor: rare and not needed for a static image.
 * <style> is allowed, its content restricted to the CSS subset in svg-css.ts.
 */
export const SVG_ELEMENTS: ReadonlySet<string> = new Set([
  "svg", "g", "defs", "symbol", "use", "switch", "title", "desc", "metadata", "style",
  "path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
  "text", "tspan", "textPath",
  "image",
  "linearGradient", "radialGradient", "stop", "pattern", "clipPath", "mask", "marker",
  "filter",
  "feBlend", "feColorMatrix", "feComponentTransfer", "feComposite", "feConvolveMatrix",
  "feDiffuseLighting", "feDisplacementMap", "feDistantLight", "feDropShadow", "feFlood",
  "feFuncA", "feFuncB", "feFuncG", "feFuncR", "feGaussianBlur", "feImage", "feMerge",
  "feMergeNode", "feMorphology", "feOffset", "fePointLight", "feSpecularLighting",
  "feSpotLight", "feTile", "feTurbulence",
]);

/** Elements whose href may also be a raster data: URI (everything else: a fragment only). */
export const IMAGE_ELEMENTS: ReadonlySet<string> = new Set(["image", "feImage"]);

/** Elements whose text content is CSS (checked as such). */
export const CSS_TEXT_ELEMENTS: ReadonlySet<string> = new Set(["style"]);

/**
 * SVG presentation attributes: parsed by browsers as CSS property values, so their values
 * get the CSS checks (url() only to a fragment, no escapes, allowlisted functions).
 * `cursor` is left out: its only non-keyword value is an image URL.
 */
const PRESENTATION = [
  "alignment-baseline", "baseline-shift", "clip", "clip-path", "clip-rule", "color",
  "color-interpolation", "color-interpolation-filters", "color-profile", "color-rendering",
  "direction", "display", "dominant-baseline", "enable-background", "fill", "fill-opacity",
  "fill-rule", "filter", "flood-color", "flood-opacity", "font", "font-family", "font-size",
  "font-size-adjust", "font-stretch", "font-style", "font-variant", "font-weight",
  "glyph-orientation-horizontal", "glyph-orientation-vertical", "image-rendering", "isolation",
  "kerning", "letter-spacing", "lighting-color", "marker", "marker-end", "marker-mid",
  "marker-start", "mask", "mask-type", "mix-blend-mode", "opacity", "overflow", "paint-order",
  "pointer-events", "shape-rendering", "stop-color", "stop-opacity", "stroke",
  "stroke-dasharray", "stroke-dashoffset", "stroke-linecap", "stroke-linejoin",
  "stroke-miterlimit", "stroke-opacity", "stroke-width", "text-anchor", "text-decoration",
  "text-rendering", "transform-box", "transform-origin", "unicode-bidi", "vector-effect",
  "visibility", "white-space", "word-spacing", "writing-mode",
];

/** Geometry, structure, paint-server, text and filter-primitive attributes (no namespace). */
const GEOMETRY = [
  "id", "class", "lang", "tabindex", "version", "baseProfile", "viewBox", "preserveAspectRatio",
  "zoomAndPan", "x", "y", "width", "height", "rx", "ry", "cx", "cy", "r", "fx", "fy", "fr",
  "x1", "y1", "x2", "y2", "points", "d", "pathLength", "transform",
  "requiredFeatures", "requiredExtensions", "systemLanguage",
  "gradientUnits", "gradientTransform", "spreadMethod", "offset", "patternUnits",
  "patternContentUnits", "patternTransform", "clipPathUnits", "maskUnits", "maskContentUnits",
  "markerUnits", "markerWidth", "markerHeight", "refX", "refY", "orient",
  "filterUnits", "primitiveUnits", "filterRes",
  "dx", "dy", "rotate", "textLength", "lengthAdjust", "startOffset", "method", "spacing",
  "side", "path",
  "in", "in2", "result", "mode", "type", "values", "tableValues", "slope", "intercept",
  "amplitude", "exponent", "operator", "k1", "k2", "k3", "k4", "order", "kernelMatrix",
  "divisor", "bias", "targetX", "targetY", "edgeMode", "kernelUnitLength", "preserveAlpha",
  "surfaceScale", "diffuseConstant", "specularConstant", "specularExponent", "scale",
  "xChannelSelector", "yChannelSelector", "stdDeviation", "radius", "baseFrequency",
  "numOctaves", "seed", "stitchTiles", "azimuth", "elevation", "z", "pointsAtX", "pointsAtY",
  "pointsAtZ", "limitingConeAngle",
  // On <style>: inert descriptors of the stylesheet (its content is what gets checked).
  "media", "title",
  // Accessibility, emitted by icon sets (aria-* and data-* are matched by prefix below).
  "role", "focusable",
];

/** Attributes without a namespace that carry CSS values. */
export const CSS_VALUE_ATTRIBUTES: ReadonlySet<string> = new Set(PRESENTATION);

/** Every attribute without a namespace that an allowed SVG element may carry, besides href and style. */
export const SVG_ATTRIBUTES: ReadonlySet<string> = new Set([...PRESENTATION, ...GEOMETRY]);

/** Inert by the HTML/ARIA specs and emitted by Illustrator (data-name) and icon sets (aria-hidden). */
export const INERT_ATTRIBUTE_PREFIX = /^(?:data|aria)-[a-z0-9-]+$/;

/** Attributes in the XML namespace: xml:base is left out, it would re-root every fragment reference. */
export const XML_ATTRIBUTES: ReadonlySet<string> = new Set(["space", "lang"]);

/** XLink attributes: href (checked as a reference) and title; xlink:show/actuate are not needed. */
export const XLINK_ATTRIBUTES: ReadonlySet<string> = new Set(["href", "title"]);

/**
 * Namespaces of editors' private data. Browsers give elements and attributes in these
 * namespaces no meaning at all (they are not rendered and run nothing), and editors write
 * them into every file they save: Inkscape's sodipodi:namedview and inkscape:label, the
 * RDF/Dublin Core licence block inside <metadata>, Sketch's and Affinity's ids. They are
 * accepted, elements and attributes alike; their values still get the script-URL check.
 * Elements nested in them are checked like any other, so an XHTML script inside
 * sodipodi:namedview is still refused. Every other namespace (XHTML, MathML, XInclude,
 * XSLT, XUL, XForms, unknown ones) is refused.
 */
export const INERT_NAMESPACES: ReadonlySet<string> = new Set([
  "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd",
  "http://www.inkscape.org/namespaces/inkscape",
  "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
  "http://creativecommons.org/ns#",
  "http://web.resource.org/cc/",
  "http://purl.org/dc/elements/1.1/",
  "http://purl.org/dc/terms/",
  "http://ns.adobe.com/AdobeIllustrator/10.0/",
  "http://www.bohemiancoding.com/sketch/ns",
  "http://www.serif.com/",
]);
