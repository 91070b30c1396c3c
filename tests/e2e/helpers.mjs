// Shared set-up for the end-to-end tests: one headless Chromium, and the demo app served
// from www/ by our own static server.

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startStaticServer } from "./static-server.mjs";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const WWW = fileURLToPath(new URL("../../www/", import.meta.url));

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}

/** Fails early and plainly when the wasm package has not been built into www/pkg. */
export function assertPackageBuilt() {
  const pkg = process.env.TIDEWAY_PKG_DIR ?? `${WWW}pkg`;
  if (!existsSync(`${pkg}/tideway.js`)) {
    throw new Error(`${pkg}/tideway.js is missing: build the package first (bash scripts/build.sh)`);
  }
}

/**
 * Serves the demo app. `TIDEWAY_PKG_DIR` serves /pkg/ from another build of the package.
 * Pass `port` to come back on the same origin after a `close()` (same origin, same data).
 */
export function serveApp({ port = 0 } = {}) {
  const mounts = [["/", WWW]];
  if (process.env.TIDEWAY_PKG_DIR) mounts.push(["/pkg/", process.env.TIDEWAY_PKG_DIR]);
  return startStaticServer({ mounts, port });
}

/** Forwards the page's console errors and uncaught exceptions to the test output. */
export function watchPage(page, errors = []) {
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    // The demo asks /v1/health whether a sync server serves it; this static server is none.
    if (message.location().url?.endsWith("/v1/health")) return;
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  return errors;
}

/** Opens the app and waits until it has loaded every note. */
export async function openApp(page, url) {
  await page.goto(url);
  await page.waitForSelector('html[data-app-ready="true"]', { timeout: 15_000 });
}
