import { describe, expect, it } from "vitest";
import { columnChart, escapeXml, horizontalBarChart } from "./charts.ts";

const HOSTILE = `<script>alert("x")</script>&'</text><svg onload=alert(1)>`;

describe("SVG charts", () => {
  it("escapes every label, in text, titles and the aria label", () => {
    for (const svg of [horizontalBarChart(HOSTILE, [{ label: HOSTILE, value: 3 }]), columnChart(HOSTILE, [{ label: HOSTILE, value: 3, title: HOSTILE }])]) {
      expect(svg).not.toContain("<script");
      expect(svg).not.toContain("<svg onload");
      expect(svg).not.toContain("</text><svg");
      expect(svg).toContain("&lt;script&gt;");
      expect(svg.match(/<svg /g)).toHaveLength(1);
    }
  });

  it("cuts long labels by code point, never inside an entity or a surrogate pair", () => {
    const svg = horizontalBarChart("t", [{ label: "&".repeat(34) + "😀😀😀", value: 1 }]);
    expect(svg).toMatch(/(&amp;){34}😀…<\/text>/);
  });

  it("scales bars to the largest value and draws an empty range as a note", () => {
    const svg = horizontalBarChart("t", [{ label: "a", value: 10 }, { label: "b", value: 5 }], 720);
    const widths = [...svg.matchAll(/<rect [^>]*width="(\d+)"/g)].map((m) => Number(m[1]));
    expect(widths).toEqual([420, 210]);
    expect(columnChart("t", [])).toContain("Nothing in this range");
  });

  it("escapeXml covers the five XML specials", () => expect(escapeXml(`&<>"'`)).toBe("&amp;&lt;&gt;&quot;&#39;"));
});
