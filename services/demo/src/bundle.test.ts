import { describe, expect, it } from "vitest";
import { buildDemoAssets } from "./bundle.ts";

describe("demo assets", () => {
  it("bundles Uppy (core, Dashboard, AWS S3) from node_modules into one script with no remote imports", async () => {
    const { js, css } = await buildDemoAssets();
    expect(js).toContain("companionEndpoint");
    expect(js).not.toMatch(/\bimport\s*[^;]*from\s*["']https?:/);
    expect(js).not.toMatch(/\bimport\(["']https?:/);
    expect(css).toContain(".uppy-Dashboard");
  });
});
