/**
 * SVG files for the content-check tests: attacks, each with what the refusal must name,
 * and realistic clean files as editors and icon sets write them. `issue` marks the attacks
 * issue 8 lists as passing the old regex check.
 */
export const SVG_OPEN = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">';
export const svg = (body: string, prolog = ""): string => `${prolog}${SVG_OPEN}${body}</svg>\n`;

export interface SvgAttack {
  name: string;
  svg: string;
  /** What the refusal's detail must say. */
  detail: RegExp;
  issue?: true;
}

const XHTML = "http://www.w3.org/1999/xhtml";

export const ATTACKS: SvgAttack[] = [
  // The attacks of issue 8, section 2.
  { issue: true, name: "<s:script> with s bound to the SVG namespace", svg: svg('<s:script xmlns:s="http://www.w3.org/2000/svg">alert(1)</s:script>'), detail: /element <s:script> at line 1, column \d+ is not on the allowlist/ },
  { issue: true, name: "an XHTML <h:script>", svg: svg(`<h:script xmlns:h="${XHTML}">alert(1)</h:script>`), detail: /element <h:script> at line 1, column \d+ in the namespace http:\/\/www\.w3\.org\/1999\/xhtml/ },
  { issue: true, name: "javascript&#58; in xlink:href", svg: svg('<a xlink:href="javascript&#58;alert(1)"><rect width="5" height="5"/></a>'), detail: /attribute xlink:href on <a> at line 1, column \d+: a javascript: URL/ },
  { issue: true, name: "javascript&#58; in href", svg: svg('<image href="javascript&#58;alert(1)" width="5" height="5"/>'), detail: /attribute href on <image> .* javascript: URL/ },
  { issue: true, name: "&#x6A;avascript: in xlink:href", svg: svg('<use xlink:href="&#x6A;avascript:alert(1)"/>'), detail: /attribute xlink:href on <use> .* javascript: URL/ },
  { issue: true, name: "&#x6A;avascript: in href", svg: svg('<a href="&#x6A;avascript:alert(1)"><text>x</text></a>'), detail: /attribute href on <a> .* javascript: URL/ },
  { issue: true, name: '<animate attributeName="href" values="javascript:...">', svg: svg('<animate attributeName="href" values="javascript&#x3a;alert(1)"/>'), detail: /attribute values on <animate> .* javascript: URL/ },
  { issue: true, name: "<set> of an event attribute (animation refused altogether)", svg: svg('<rect width="5" height="5"><set attributeName="onclick" to="alert(1)"/></rect>'), detail: /element <set> .* not on the allowlist/ },
  { issue: true, name: "an iframe with srcdoc inside a prefixed foreignObject", svg: svg(`<s:foreignObject xmlns:s="http://www.w3.org/2000/svg" width="10" height="10"><iframe xmlns="${XHTML}" srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"/></s:foreignObject>`), detail: /element <s:foreignObject> .* not on the allowlist/ },
  { issue: true, name: "an XHTML iframe with srcdoc", svg: svg(`<iframe xmlns="${XHTML}" srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"/>`), detail: /element <iframe> .* in the namespace http:\/\/www\.w3\.org\/1999\/xhtml/ },
  { issue: true, name: "an external DTD", svg: svg("", '<!DOCTYPE svg SYSTEM "http://evil.example/x.dtd">\n'), detail: /DOCTYPE declaration at line 1/ },
  { issue: true, name: "xi:include", svg: svg('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'), detail: /element <xi:include> .* namespace http:\/\/www\.w3\.org\/2001\/XInclude/ },
  // More of the same families.
  { name: "an entity bomb", svg: svg("<text>&lol3;</text>", '<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'), detail: /DOCTYPE declaration at line 2/ },
  { name: "the public SVG 1.1 DOCTYPE", svg: svg("", '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">'), detail: /DOCTYPE declaration/ },
  { name: "an undefined entity reference", svg: svg("<text>&nbsp;</text>"), detail: /entity reference other than &lt; &gt; &amp; &quot; &apos;/ },
  { name: "<?xml-stylesheet?> (XSLT)", svg: svg("", '<?xml version="1.0"?><?xml-stylesheet type="text/xsl" href="http://evil.example/x.xsl"?>'), detail: /processing instruction <\?xml-stylesheet\?> at line 1/ },
  { name: "an <?XML-STYLESHEET?> in upper case, after the root", svg: `${svg("")}<?XML-STYLESHEET href="x.css"?>`, detail: /processing instruction <\?XML-STYLESHEET\?>/ },
  { name: "a tab inside javascript: (jav&#x09;ascript)", svg: svg('<image href=" JaVa&#x09;ScRiPt:alert(1)" width="1" height="1"/>'), detail: /href on <image> .* javascript: URL/ },
  { name: "a newline inside javascript: in xlink:href", svg: svg('<use xlink:href="java&#x0A;script&#x3A;alert(1)"/>'), detail: /xlink:href on <use> .* javascript: URL/ },
  { name: "an upper-case <SCRIPT>", svg: svg("<SCRIPT>alert(1)</SCRIPT>"), detail: /element <SCRIPT> .* not on the allowlist/ },
  { name: "an upper-case event handler", svg: svg('<rect ONLOAD="alert(1)" width="1" height="1"/>'), detail: /event-handler attribute ONLOAD on <rect>/ },
  { name: "an event handler in a namespace", svg: svg('<rect s:onclick="alert(1)" xmlns:s="http://www.w3.org/2000/svg"/>'), detail: /event-handler attribute s:onclick/ },
  { name: "a CDATA-wrapped XHTML script", svg: svg(`<h:script xmlns:h="${XHTML}"><![CDATA[alert(1)]]></h:script>`), detail: /element <h:script>/ },
  { name: "a CDATA-wrapped script in the default namespace switched to XHTML", svg: svg(`<g xmlns="${XHTML}"><script><![CDATA[alert(1)]]></script></g>`), detail: /element <g> .* in the namespace http:\/\/www\.w3\.org\/1999\/xhtml/ },
  { name: "an editor prefix bound to XHTML", svg: svg(`<inkscape:script xmlns:inkscape="${XHTML}">alert(1)</inkscape:script>`), detail: /element <inkscape:script> .* namespace http:\/\/www\.w3\.org\/1999\/xhtml/ },
  { name: "an XHTML script nested in sodipodi:namedview", svg: svg(`<sodipodi:namedview xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"><h:script xmlns:h="${XHTML}">alert(1)</h:script></sodipodi:namedview>`), detail: /element <h:script>/ },
  { name: "a MathML element", svg: svg('<m:math xmlns:m="http://www.w3.org/1998/Math/MathML"><m:mi>x</m:mi></m:math>'), detail: /element <m:math> .* namespace http:\/\/www\.w3\.org\/1998\/Math\/MathML/ },
  { name: "<use> of an external SVG", svg: svg('<use href="http://evil.example/x.svg#a"/>'), detail: /href on <use> .*"http:\/\/evil\.example\/x\.svg#a" is an external reference/ },
  { name: "<use> of a relative file", svg: svg('<use xlink:href="other.svg#a"/>'), detail: /xlink:href on <use> .* is an external reference/ },
  { name: "an external raster image", svg: svg('<image href="https://tracker.example/p.png" width="1" height="1"/>'), detail: /href on <image> .* neither a same-document fragment/ },
  { name: "a data:image/svg+xml image", svg: svg('<image href="data:image/svg+xml;base64,PHN2Zy8+" width="1" height="1"/>'), detail: /href on <image> .*: a data:image\/svg\+xml URL/ },
  { name: "a data:text/html image", svg: svg('<image href="data:text/html;base64,PHNjcmlwdD4=" width="1" height="1"/>'), detail: /data:text\/html URL/ },
  { name: "a PNG data: URI that is not base64", svg: svg('<image href="data:image/png,%3Cscript%3E" width="1" height="1"/>'), detail: /neither a same-document fragment/ },
  { name: "style with url(&#x6A;avascript:)", svg: svg('<rect style="fill:url(&#x6A;avascript:alert(1))" width="1" height="1"/>'), detail: /attribute style on <rect> .* javascript: URL/ },
  { name: "a style attribute with an external url()", svg: svg('<rect style="fill:url(http://evil.example/t.png)" width="1" height="1"/>'), detail: /attribute style on <rect> .*url\("http:\/\/evil\.example\/t\.png"\): only url\(#id\)/ },
  { name: "a <style> with @import", svg: svg("<style>@import url(http://evil.example/x.css);</style>"), detail: /<style> at line 1, column \d+ with a CSS at-rule \("@import/ },
  { name: "a <style> with an external background", svg: svg("<style>rect{fill:red;background:URL( 'https://evil.example/t.png' )}</style>"), detail: /<style> .* url\("https:\/\/evil\.example\/t\.png"\)/ },
  { name: "a <style> with image-set()", svg: svg('<style>svg{background-image:image-set("https://evil.example/t.png" 1x)}</style>'), detail: /the CSS function "image-set"\(\)/ },
  { name: "a <style> with a CSS escape spelling url(", svg: svg("<style>svg{background:\\75rl(https://evil.example/t.png)}</style>"), detail: /a CSS escape/ },
  { name: "a url() hidden between two strings holding comment markers", svg: svg(`<rect style="font-family:'/*';fill:url(http://evil.example/t);x:'*/'" width="1" height="1"/>`), detail: /url\("http:\/\/evil\.example\/t"\)/ },
  { name: "a <style> url() split by a CDATA section", svg: svg("<style>rect{fill:u<![CDATA[rl(http://evil.example/t)}]]></style>"), detail: /<style> .* url\("http:\/\/evil\.example\/t"\)/ },
  { name: "a <style> url() split by an XML comment", svg: svg("<style>rect{fill:u<!-- x -->rl(http://evil.example/t)}</style>"), detail: /<style> .* url\("http:\/\/evil\.example\/t"\)/ },
  { name: "a <style> nested in a <style>", svg: svg("<style>rect{fill:url(http://evil.example/t)}<style>g{}</style></style>"), detail: /an element inside <style>/ },
  { name: "an escaped quote in a CSS string", svg: svg(`<style>text{font-family:"x\\""; fill:url(http://evil.example/t); y:"z" "}</style>`), detail: /<style> .* a CSS escape/ },
  { name: "a CDATA <style> with expression()", svg: svg("<style><![CDATA[rect{width:expression(alert(1))}]]></style>"), detail: /the CSS function "expression"\(\)/ },
  { name: "fill with an external url()", svg: svg('<rect fill="url(http://evil.example/p.svg#g)" width="1" height="1"/>'), detail: /attribute fill on <rect>/ },
  { name: "filter with an external url()", svg: svg('<rect filter="url(https://evil.example/f.svg#f)" width="1" height="1"/>'), detail: /attribute filter on <rect>/ },
  { name: "mask with an external url()", svg: svg('<rect mask="url(//evil.example/m#m)" width="1" height="1"/>'), detail: /attribute mask on <rect>/ },
  { name: "clip-path with an external url()", svg: svg('<rect clip-path="url(&quot;http://evil.example/c#c&quot;)" width="1" height="1"/>'), detail: /attribute clip-path on <rect>/ },
  { name: "marker-start with an external url()", svg: svg('<path d="M0 0L1 1" marker-start="url(m.svg#m)"/>'), detail: /attribute marker-start on <path>/ },
  { name: "xml:base re-rooting a fragment", svg: svg('<g xml:base="http://evil.example/"><use href="#a"/></g>'), detail: /attribute xml:base on <g> .* not an allowed xml: attribute/ },
  { name: "an attribute in an unknown namespace", svg: svg('<rect ev:event="click" xmlns:ev="http://www.w3.org/2001/xml-events" width="1" height="1"/>'), detail: /attribute ev:event on <rect> .* foreign namespace http:\/\/www\.w3\.org\/2001\/xml-events/ },
  { name: "an unknown attribute without a namespace", svg: svg('<rect width="1" height="1" src="x"/>'), detail: /attribute src on <rect> .* not on the allowlist of SVG attributes/ },
  { name: "an xlink:show attribute", svg: svg('<use xlink:href="#a" xlink:show="embed" xlink:actuate="onLoad"/>'), detail: /not an allowed XLink attribute/ },
  { name: "a root <svg> outside the SVG namespace", svg: '<svg width="1" height="1"><rect width="1" height="1"/></svg>', detail: /no <svg> root element in the SVG namespace: the root is <svg> \(namespace none\)/ },
  { name: "an XHTML root", svg: `<html xmlns="${XHTML}"><body><svg xmlns="http://www.w3.org/2000/svg"/></body></html>`, detail: /the root is <html>/ },
  { name: "a declared encoding other than UTF-8", svg: svg("", '<?xml version="1.0" encoding="ISO-8859-1"?>'), detail: /encoding "ISO-8859-1": only UTF-8/ },
  { name: "XML 1.1", svg: svg("", '<?xml version="1.1"?>'), detail: /XML 1\.1: only XML 1\.0/ },
  { name: "an unclosed element", svg: `${SVG_OPEN}<g><rect/></svg>`, detail: /not well-formed XML/ },
  { name: "text after the root", svg: `${svg("")}<script>alert(1)</script>`, detail: /not well-formed XML/ },
  // Tried in the attacker review of the finished check (all held; kept so they keep holding).
  { name: "an encoding declaration other than UTF-8 (UTF-7 spells < as +ADw-)", svg: svg("", '<?xml version="1.0" encoding="UTF-7"?>'), detail: /encoding "UTF-7": only UTF-8/ },
  { name: "the default namespace redeclared as XHTML on a child", svg: svg(`<g xmlns="${XHTML}"><script>alert(1)</script></g>`), detail: /element <g> .* in the namespace http:\/\/www\.w3\.org\/1999\/xhtml/ },
  { name: "a <script> in no namespace (xmlns=\"\")", svg: svg('<script xmlns="">alert(1)</script>'), detail: /element <script> .* in the namespace none/ },
  { name: "the xlink prefix rebound to XHTML", svg: `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="${XHTML}"><use xlink:href="#a"/></svg>`, detail: /xlink:href on <use> .* foreign namespace http:\/\/www\.w3\.org\/1999\/xhtml/ },
  { name: "fill=\"url(javascript:...)\" in a presentation attribute", svg: svg('<rect fill="url(javascript:alert(1))" width="1" height="1"/>'), detail: /attribute fill on <rect> .* javascript: URL/ },
  { name: "a CSS comment opening an unquoted url()", svg: svg('<rect style="fill:url(/**/http://evil.example/x)"/>'), detail: /url\("\/\*\*\/http:.*only url\(#id\)/ },
  { name: "an XML comment splitting url( inside <style>", svg: svg("<style>rect{fill:u<!-- -->rl(http://evil.example/x)}</style>"), detail: /<style> .* url\("http:\/\/evil\.example\/x"\)/ },
  { name: "<feImage> fetching an external image", svg: svg('<filter id="f"><feImage href="http://evil.example/x.png"/></filter>'), detail: /href on <feImage> .* neither a same-document fragment/ },
  { name: "SVG Tiny 1.2 <listener>", svg: svg('<listener event="click" handler="#h"/>'), detail: /element <listener> .* not on the allowlist/ },
  { name: "a cursor attribute (its only non-keyword value is an image URL)", svg: svg('<rect cursor="url(http://evil.example/c.png)" width="1" height="1"/>'), detail: /attribute cursor on <rect> .* not on the allowlist/ },
  { name: "&#x0; inside javascript: (not XML: refused as malformed)", svg: svg('<use href="java&#x0;script:alert(1)"/>'), detail: /not well-formed XML/ },
  { name: "a C1 control (U+0085) inside javascript:", svg: svg('<image href="java\u0085script:alert(1)" width="1" height="1"/>'), detail: /href on <image> .* javascript: URL/ },
];

/** A plain icon, as icon sets ship them. */
export const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" role="img" focusable="false"><path fill="currentColor" fill-rule="evenodd" d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm1 15h-2v-6h2zm0-8h-2V7h2z"/></svg>';

/** An SVG that starts with the XML declaration and a comment (file-type sniffs it as XML). */
export const WITH_DECLARATION = `<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Generator: a drawing program -->
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="64" height="64" viewBox="0 0 64 64">
  <title>Circle</title>
  <desc>A red circle &amp; a label</desc>
  <circle cx="32" cy="32" r="30" fill="#c00" stroke="black" stroke-width="2"/>
</svg>
`;

/** What Inkscape 1.x writes as "Inkscape SVG": editor namespaces, RDF metadata, an embedded PNG. */
export const INKSCAPE = `<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Created with Inkscape (http://www.inkscape.org/) -->

<svg
   width="210mm"
   height="297mm"
   viewBox="0 0 210 297"
   version="1.1"
   id="svg5"
   inkscape:version="1.2.2 (b0a8486541, 2022-12-01)"
   sodipodi:docname="drawing.svg"
   inkscape:export-filename="drawing.png"
   xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
   xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
   xmlns:xlink="http://www.w3.org/1999/xlink"
   xmlns="http://www.w3.org/2000/svg"
   xmlns:svg="http://www.w3.org/2000/svg"
   xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
   xmlns:cc="http://creativecommons.org/ns#"
   xmlns:dc="http://purl.org/dc/elements/1.1/">
  <sodipodi:namedview
     id="namedview7"
     pagecolor="#ffffff"
     bordercolor="#666666"
     borderopacity="1.0"
     inkscape:showpageshadow="2"
     inkscape:pageopacity="0.0"
     inkscape:document-units="mm"
     showgrid="false"
     inkscape:zoom="0.73"
     inkscape:current-layer="layer1">
    <inkscape:grid type="xygrid" id="grid1" />
  </sodipodi:namedview>
  <defs
     id="defs2">
    <linearGradient
       inkscape:collect="always"
       id="linearGradient1">
      <stop style="stop-color:#1a5fb4;stop-opacity:1;" offset="0" id="stop1" />
      <stop style="stop-color:#1a5fb4;stop-opacity:0;" offset="1" id="stop2" />
    </linearGradient>
    <linearGradient
       inkscape:collect="always"
       xlink:href="#linearGradient1"
       id="linearGradient3"
       x1="20" y1="40" x2="120" y2="40"
       gradientUnits="userSpaceOnUse"
       gradientTransform="matrix(1.2,0,0,1,-4,2)" />
    <filter inkscape:collect="always" style="color-interpolation-filters:sRGB" id="filter1" x="-0.1" y="-0.1" width="1.2" height="1.2">
      <feGaussianBlur inkscape:collect="always" stdDeviation="1.5" id="feGaussianBlur1" />
    </filter>
    <clipPath clipPathUnits="userSpaceOnUse" id="clipPath1">
      <rect style="fill:#000000;stroke:none" id="rect9" width="80" height="80" x="10" y="10" />
    </clipPath>
  </defs>
  <metadata id="metadata1">
    <rdf:RDF>
      <cc:Work rdf:about="">
        <dc:format>image/svg+xml</dc:format>
        <dc:type rdf:resource="http://purl.org/dc/dcmitype/StillImage" />
        <dc:title>Drawing</dc:title>
      </cc:Work>
    </rdf:RDF>
  </metadata>
  <g
     inkscape:label="Layer 1"
     inkscape:groupmode="layer"
     id="layer1">
    <rect
       style="fill:url(#linearGradient3);fill-opacity:1;stroke:#000000;stroke-width:0.5;stroke-linejoin:round;paint-order:stroke fill markers;filter:url(#filter1)"
       id="rect1"
       width="100" height="50" x="20" y="20" ry="4"
       clip-path="url(#clipPath1)" />
    <path
       style="fill:none;stroke:#e01b24;stroke-width:1.2;stroke-dasharray:2.4, 1.2"
       d="m 30,120 c 20,-30 40,30 60,0 s 40,30 60,0"
       id="path1"
       sodipodi:nodetypes="ccc"
       inkscape:path-effect="#path-effect1"
       inkscape:original-d="m 30,120 c 20,-30 40,30 60,0" />
    <text
       xml:space="preserve"
       style="font-style:normal;font-weight:bold;font-size:10.5833px;font-family:'DejaVu Sans';-inkscape-font-specification:'DejaVu Sans Bold';fill:#241f31"
       x="30" y="160" id="text1"><tspan sodipodi:role="line" id="tspan1" x="30" y="160">Hello, Inkscape &amp; friends</tspan></text>
    <image
       width="2" height="2" preserveAspectRatio="none"
       xlink:href="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFElEQVR4nGP4
z8DAAMIM/////w8AH+4F+7C4l8kAAAAASUVORK5CYII="
       id="image1" x="150" y="150" />
    <use xlink:href="#rect1" transform="translate(0,70)" id="use1" />
  </g>
</svg>
`;

/** What Illustrator's "export as SVG" writes: a <style> with classes, data-name. */
export const ILLUSTRATOR = `<?xml version="1.0" encoding="UTF-8"?>
<svg id="Layer_1" data-name="Layer 1" xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 100 100">
  <defs>
    <style>
      .cls-1 { fill: url(#linear-gradient); }
      .cls-2 { fill: #231f20; font-family: "Helvetica Neue", Arial, sans-serif; /* a comment */ }
      .cls-3 { fill: rgba(35, 31, 32, 0.5); transform: rotate(45deg) scale(1.1); }
    </style>
    <linearGradient id="linear-gradient" x1="0" y1="50" x2="100" y2="50" gradientUnits="userSpaceOnUse">
      <stop offset="0" stop-color="#fff"/>
      <stop offset="1" stop-color="#000"/>
    </linearGradient>
  </defs>
  <title>logo</title>
  <rect class="cls-1" width="100" height="100"/>
  <polygon class="cls-3" points="10 10 90 10 50 90 10 10"/>
  <text class="cls-2" transform="translate(10 50)">Logo</text>
</svg>
`;

/** Text that talks about scripts is inert: the old pattern check refused it. */
export const TALKS_ABOUT_SCRIPTS = svg('<text x="0" y="5"><![CDATA[<script>alert(1)</script> is what XSS looks like; onload="x" too]]></text>');

export const CLEAN: [string, string][] = [
  ["a plain icon", ICON],
  ["an SVG starting with <?xml ...?>", WITH_DECLARATION],
  ["an Inkscape file (sodipodi/inkscape/RDF namespaces, embedded PNG)", INKSCAPE],
  ["an Illustrator export with a <style>", ILLUSTRATOR],
  ["text that mentions <script> in CDATA", TALKS_ABOUT_SCRIPTS],
  ["an SVG with a UTF-8 byte order mark", `\ufeff${ICON}`],
];
