// Set-up for the framework and bundler tests: a tiny app importing the built package
// (pkg/) by its name, as an app's bundler finds it in node_modules, bundled with no
// plugin, served by the reference server (`tideway-server --static`) and opened in
// headless Chromium through Playwright.

import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../e2e/helpers.mjs";
import { REPO_ROOT, startReferenceServer } from "../sync/reference-server.mjs";

const PKG = process.env.TIDEWAY_PKG_DIR ?? join(REPO_ROOT, "pkg");

/** The longest a test waits for a page to do one thing. */
export const WAIT_LIMIT_MS = 15_000;

/**
 * A directory holding `files` (path → text) and `node_modules/tideway`, a link to the
 * built package; `remove()` deletes it.
 */
export function appDir(files) {
  if (!existsSync(join(PKG, "index.js"))) throw new Error(`${join(PKG, "index.js")} is missing: build the package first (bash scripts/build.sh)`);
  const dir = mkdtempSync(join(tmpdir(), "tideway-app-"));
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(PKG, join(dir, "node_modules/tideway"), "dir");
  for (const [path, text] of Object.entries(files)) writeFileSync(join(dir, path), text);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Bundles `entry` of `dir` with esbuild into `dir/site/` beside an index.html that
 * loads it. esbuild leaves `new URL("tideway_bg.wasm", import.meta.url)` as it is,
 * so the wasm module is copied beside the bundle, as the README says.
 */
export async function bundleWithEsbuild(dir, entry, { development = false } = {}) {
  const esbuild = await import("esbuild");
  const site = join(dir, "site");
  await esbuild.build({
    entryPoints: [join(dir, entry)],
    bundle: true,
    format: "esm",
    outfile: join(site, "app.js"),
    nodePaths: [join(REPO_ROOT, "node_modules")],
    define: {
      "process.env.NODE_ENV": JSON.stringify(development ? "development" : "production"),
      // Vue's compile-time flags, which its bundler build expects a bundler to set.
      __VUE_OPTIONS_API__: "false",
      __VUE_PROD_DEVTOOLS__: "false",
      __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: "false",
    },
    logLevel: "error",
  });
  copyFileSync(join(PKG, "tideway_bg.wasm"), join(site, "tideway_bg.wasm"));
  writeFileSync(join(site, "index.html"), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><div id="root"></div><script type="module" src="./app.js"></script>`);
  return site;
}

/** Serves `site` from a reference server of its own; `close()` stops it. */
export function serve(site) {
  return startReferenceServer({ staticDir: site, tokens: ["app-token:app"] });
}

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

/**
 * The test app `file` (beside this module, with the `app-common.js` it imports),
 * bundled by esbuild with the frameworks' development builds and served, for the
 * test file that calls this: ready before its tests (`served.url`), gone after them.
 */
export function servedApp(file) {
  const served = {};
  let app;
  before(async () => {
    const source = (name) => readFileSync(new URL(name, import.meta.url), "utf8");
    app = appDir({ "main.js": source(file), "app-common.js": source("app-common.js") });
    served.server = await serve(await bundleWithEsbuild(app.dir, "main.js", { development: true }));
    served.url = served.server.url;
  });
  after(async () => {
    await served.server?.close();
    app?.remove();
  });
  return served;
}

/** A new page of `browser` on the served app, once the app says it is ready. */
export async function appPage(browser, served) {
  const page = await newPage(browser);
  await page.goto(served.url);
  await page.waitForFunction(() => document.documentElement.dataset.ready === "true", null, { timeout: WAIT_LIMIT_MS });
  return page;
}

/** Closes and deletes the app's database `name`, checks the page logged no error, and closes it. */
export async function closeApp({ page, name }) {
  await page.evaluate(async (name) => {
    await window.app.close();
    await window.app.deleteDatabase(name);
  }, name);
  assert.deepEqual(page.errors, [], "no error or warning in the page");
  await page.close();
}

/** A browser for the test file that calls this, closed after its tests. */
export function withBrowser() {
  const running = {};
  before(async () => {
    running.browser = await launchBrowser();
  });
  after(async () => {
    await running.browser?.close();
  });
  return running;
}

/** A new page that records its uncaught errors and console errors in `page.errors`. */
export async function newPage(browser) {
  const page = await browser.newPage();
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") page.errors.push(`console ${message.type()}: ${message.text()}`);
  });
  return page;
}
