import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** The demo page's assets, built from node_modules: nothing is fetched from a CDN. The CSS is
 * @uppy/dashboard/dist/style.min.css, exported as css/style.min.css. */
export interface DemoAssets {
  js: string;
  css: string;
}

const require = createRequire(import.meta.url);

/** Bundles the page script (Uppy core, Dashboard, AWS S3) and reads the Dashboard's CSS. */
export async function buildDemoAssets(): Promise<DemoAssets> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("./page/demo.js", import.meta.url))],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  const css = await readFile(require.resolve("@uppy/dashboard/css/style.min.css"), "utf8");
  return { js: result.outputFiles[0]!.text, css };
}

/** Builds once, on first use; every later call gets the same promise (a failed build is retried). */
export function cachedDemoAssets(): () => Promise<DemoAssets> {
  let pending: Promise<DemoAssets> | undefined;
  return () => {
    pending ??= buildDemoAssets().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}
