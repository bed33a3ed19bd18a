export { buildDemoAssets, cachedDemoAssets, type DemoAssets } from "./bundle.ts";
export { demoPage } from "./page.ts";
