import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/**
 * Debian's chromium driven by playwright-core (`npx playwright install` cannot download
 * browsers here): headless, no sandbox (tests run as root), and none of the background
 * networking a fresh profile starts (update checks, safe browsing, metrics), so a test's
 * traffic is only what the page under test makes. infra/bin/provision.sh installs chromium.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run infra/bin/test (it installs Debian's chromium) or set CHROMIUM_PATH`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-first-run", "--disable-features=Translate,OptimizationHints,MediaRouter"],
  });
}
