import { describe, expect, it } from "vitest";
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

/**
 * The browser path has no Node-only imports: esbuild bundles "@intake/client" for the
 * browser platform, where any node: or Node built-in import fails the build.
 */
describe("the browser entry of @intake/client", () => {
  it("bundles for the browser with no Node built-ins", async () => {
    const entry = fileURLToPath(new URL("../../packages/client/src/index.ts", import.meta.url));
    const result = await build({ entryPoints: [entry], bundle: true, platform: "browser", format: "esm", write: false, metafile: true, logLevel: "silent" });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((i) => i.includes("node.ts"))).toBe(false);
    expect(result.outputFiles[0]!.text).not.toMatch(/from\s*["']node:|require\(["'](fs|crypto|stream)["']\)/);
  });

  it("carries no zod: the SDK takes only types from @intake/contract", async () => {
    const entry = fileURLToPath(new URL("../../packages/client/src/index.ts", import.meta.url));
    const result = await build({ entryPoints: [entry], bundle: true, platform: "browser", format: "esm", write: false, metafile: true, logLevel: "silent" });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((i) => /node_modules\/zod\/|packages\/contract\//.test(i))).toEqual([]);
    // The contract's schemas would bring zod's error messages along with them.
    expect(result.outputFiles[0]!.text).not.toMatch(/ZodError|\$ZodType/);
  });
});
