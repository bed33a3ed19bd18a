import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The SVG check through the whole stack (API, PUT, S3 event, ingest, inspect, scan with the
 * real clamd and the content checks, finalize): an SVG that would run script is
 * quarantined as invalid_content, a real editor's file (which starts with <?xml, so the
 * sniffer calls it application/xml) is verified and downloads byte for byte.
 */
const SVG = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">';

const INKSCAPE = `<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Created with Inkscape (http://www.inkscape.org/) -->
<svg width="100" height="100" viewBox="0 0 100 100" version="1.1" id="svg1"
   inkscape:version="1.3 (0e150ed6c4, 2023-07-21)" sodipodi:docname="badge.svg"
   xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
   xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
   xmlns:xlink="http://www.w3.org/1999/xlink"
   xmlns="http://www.w3.org/2000/svg" xmlns:svg="http://www.w3.org/2000/svg">
  <sodipodi:namedview id="namedview1" pagecolor="#ffffff" inkscape:zoom="2" inkscape:current-layer="layer1" />
  <defs id="defs1">
    <radialGradient inkscape:collect="always" id="radialGradient1" cx="50" cy="50" r="45" gradientUnits="userSpaceOnUse">
      <stop style="stop-color:#f6d32d;stop-opacity:1" offset="0" id="stop1" />
      <stop style="stop-color:#e5a50a;stop-opacity:1" offset="1" id="stop2" />
    </radialGradient>
  </defs>
  <g inkscape:label="Layer 1" inkscape:groupmode="layer" id="layer1">
    <circle style="fill:url(#radialGradient1);stroke:#986a44;stroke-width:2" id="path1" cx="50" cy="50" r="45" />
    <text xml:space="preserve" style="font-size:20px;font-family:'DejaVu Sans';text-anchor:middle;fill:#3d3846" x="50" y="57" id="text1"><tspan sodipodi:role="line" id="tspan1" x="50" y="57">OK</tspan></text>
    <use xlink:href="#path1" transform="scale(0.5)" id="use1" />
  </g>
</svg>
`;

describe("SVG uploads through the whole stack (fauxqs, SQLite)", () => {
  let s: PipelineStack;
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite" });
  });
  afterAll(async () => s?.close());

  it("an Inkscape file starting with <?xml ends verified and downloads byte for byte", async () => {
    const bytes = Buffer.from(INKSCAPE);
    const { id } = await s.upload(bytes, { contentType: "image/svg+xml", filename: "badge.svg", sha256: sha256Of(bytes) });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason, detail: done.reasonDetail }).toEqual({ status: "verified", reason: null, detail: null });
    expect(done.finalKey).toBe(objectKey("verified", s.tenant, id));
    const got = await s.download(id);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(bytes)).toBe(true);
  });

  it.each([
    ["<s:script> in the SVG namespace", `${SVG}<s:script xmlns:s="http://www.w3.org/2000/svg">alert(1)</s:script></svg>`, /^SVG element <s:script> at line 1, column \d+ is not on the allowlist/],
    ["an XHTML script", `${SVG}<h:script xmlns:h="http://www.w3.org/1999/xhtml">alert(1)</h:script></svg>`, /^SVG with the element <h:script> .* namespace http:\/\/www\.w3\.org\/1999\/xhtml/],
    ["javascript&#58; in xlink:href", `${SVG}<a xlink:href="javascript&#58;alert(1)"><rect width="5" height="5"/></a></svg>`, /^SVG attribute xlink:href on <a> .*: a javascript: URL/],
    ["an external DTD", `<!DOCTYPE svg SYSTEM "http://evil.example/x.dtd">\n${SVG}</svg>`, /^SVG with a DOCTYPE declaration at line 1/],
  ])("%s ends quarantined as invalid_content and cannot be downloaded", async (_name, text, detail) => {
    const bytes = Buffer.from(text);
    const { id } = await s.upload(bytes, { contentType: "image/svg+xml", filename: "attack.svg" });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done.status).toBe("quarantined");
    expect(done.reason).toBe("invalid_content");
    expect(done.reasonDetail).toMatch(detail);
    expect(done.finalKey).toBe(objectKey("quarantine", s.tenant, id));
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
    expect((await s.download(id)).status).toBe(409);
    expect(await s.auditActions(id)).not.toContain("upload.verified");
  });
});
