// Shared set-up for the end-to-end tests: one headless browser, and the demo app served
// as `bash scripts/demo.sh` serves it: by the reference server (`tideway-server --static
// www`, which the app then syncs with), never by a stand-in.
//
// The browser is chosen by TIDEWAY_E2E_BROWSER: `chromium` (the default, over the Chrome
// DevTools Protocol) or `firefox` (stock Firefox ESR over WebDriver BiDi). Both are driven
// by puppeteer-core, which never downloads a browser: it launches the installed ones.

import { existsSync } from "node:fs";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";
import { startReferenceServer } from "../sync/reference-server.mjs";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const WWW = fileURLToPath(new URL("../../www/", import.meta.url));

/** Chromium's path and flags, for every suite and benchmark that launches it. */
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

const ENGINES = {
  chromium: { browser: "chrome", executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS },
  firefox: {
    browser: "firefox",
    executablePath: process.env.FIREFOX_PATH ?? "/usr/bin/firefox-esr",
    args: [],
  },
};

export const ENGINE = process.env.TIDEWAY_E2E_BROWSER ?? "chromium";
if (!ENGINES[ENGINE]) {
  throw new Error(`TIDEWAY_E2E_BROWSER=${ENGINE}: expected one of ${Object.keys(ENGINES).join(", ")}`);
}

/** Launches the chosen engine and checks that it is the one that answered. */
export async function launchBrowser() {
  const { browser: kind, executablePath, args } = ENGINES[ENGINE];
  const browser = await puppeteer.launch({ browser: kind, executablePath, args, headless: true });
  const version = await browser.version();
  const expected = kind === "firefox" ? /firefox/i : /chrom/i;
  if (!expected.test(version)) {
    await browser.close();
    throw new Error(`asked for ${ENGINE}, got ${version}`);
  }
  return browser;
}

/** Fails early and plainly when the wasm package has not been built into www/pkg. */
export function assertPackageBuilt() {
  for (const file of ["tideway.js", "files.json"]) {
    if (!existsSync(`${WWW}pkg/${file}`)) {
      throw new Error(`${WWW}pkg/${file} is missing: build the package first (bash scripts/build.sh)`);
    }
  }
}

/** The token the demo app signs in with (www/js/notes-store.js), as scripts/demo.sh sets it up. */
export const DEMO_TOKEN = "demo";

/**
 * Serves the demo app from a reference server of its own (its own database, so the notes
 * one test syncs never reach another). `close()` stops it and deletes its database.
 */
export function serveApp() {
  return startReferenceServer({ staticDir: WWW, tokens: [`${DEMO_TOKEN}:demo`] });
}

/** Forwards the page's console errors and uncaught exceptions to the test output. */
export function watchPage(page, errors = []) {
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message ?? error}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  return errors;
}

/** Opens the app and waits until it has loaded every note. */
export async function openApp(page, url) {
  try {
    await page.goto(url, { timeout: WAIT_LIMIT_MS });
  } catch (error) {
    throw new Error(`loading ${url} took over ${WAIT_LIMIT_MS} ms: ${error.message.split("\n")[0]}`);
  }
  await waitForApp(page);
}

/** Reloads the page and waits until the app has loaded every note again. */
export async function reloadApp(page) {
  try {
    await page.reload({ timeout: WAIT_LIMIT_MS });
  } catch (error) {
    throw new Error(`reloading took over ${WAIT_LIMIT_MS} ms: ${error.message.split("\n")[0]}`);
  }
  await waitForApp(page);
}

/** The longest a test waits for one thing to happen. */
export const WAIT_LIMIT_MS = 15_000;

/** Waits until the app (after a navigation or a reload) has loaded every note. */
export async function waitForApp(page) {
  await waitFor(page, "the app to load its notes", () => document.documentElement.dataset.appReady === "true");
}

/**
 * Waits until `predicate(...args)` is true in the page, for at most `timeout` ms, and
 * returns its handle; the error names `what` was awaited.
 */
export async function waitFor(page, what, predicate, { args = [], timeout = WAIT_LIMIT_MS } = {}) {
  try {
    return await page.waitForFunction(predicate, { timeout, polling: 100 }, ...args);
  } catch (error) {
    throw new Error(`waited ${timeout} ms for ${what}: ${error.message.split("\n")[0]}`);
  }
}

/**
 * Launches the browser and serves the demo app before a file's tests, then runs
 * `setUp(app)` if given, and stops both after the tests. With `when: false` (tests
 * skipped on this engine) nothing is started; with `serve: false` each test serves the
 * app itself. `browser` and `server` of the returned object are set once the tests run.
 * (A file's further set-up goes in `setUp`: Node 20 runs a file's top-level `before`
 * hooks concurrently.)
 */
export function withAppInBrowser({ when = true, serve = true, setUp } = {}) {
  const app = { browser: undefined, server: undefined };
  before(async () => {
    if (!when) return;
    assertPackageBuilt();
    app.browser = await launchBrowser();
    if (serve) app.server = await serveApp();
    await setUp?.(app);
  });
  after(async () => {
    await app.browser?.close();
    await app.server?.close();
  });
  return app;
}

/** Replaces a field's text by typing, as a person would. */
export async function fill(page, selector, text) {
  try {
    await page.locator(selector).setTimeout(WAIT_LIMIT_MS).fill(text);
  } catch (error) {
    throw new Error(`waited ${WAIT_LIMIT_MS} ms to type into ${selector}: ${error.message.split("\n")[0]}`);
  }
}

/**
 * Clicks a button once it is shown, with the element's own click (the top bar rewraps as
 * the status pills change, which can move a button between finding it and clicking there).
 */
export async function press(page, selector) {
  await waitFor(page, `${selector} to be shown`, (selector) => document.querySelector(selector)?.checkVisibility(), {
    args: [selector],
  });
  await page.$eval(selector, (button) => button.click());
}

/** Waits until the open note's last edit is durable. */
export async function waitSaved(page) {
  await waitFor(page, "the note to be saved", () => document.querySelector("#save-state")?.dataset.state === "saved");
}

/** Types a new note through the UI, waits until it is durable and returns its id. */
export async function writeNote(page, title, body) {
  await press(page, "#new-note");
  await fill(page, "#note-title", title);
  await fill(page, "#note-body", body);
  await waitSaved(page);
  return page.evaluate((title) => window.tidewayNotes.store.list().find((note) => note.data.title === title)?.id, title);
}

/** Opens the note whose list entry shows `title` (found and clicked in one step: the list re-renders). */
export async function openNote(page, title) {
  const click = (title) => {
    const item = [...document.querySelectorAll(".note-item")].find((item) => item.textContent.includes(title));
    item?.click();
    return item !== undefined;
  };
  await (await waitFor(page, `a note titled "${title}" in the list`, click, { args: [title] })).dispose();
}

/** Waits until every note shows synced, nothing waits in the outbox and no sync runs. */
export async function waitAllSynced(page) {
  await waitFor(
    page,
    "every note to show synced and nothing to wait in the outbox",
    () =>
      [...document.querySelectorAll("#note-list .sync-badge")].every((badge) => badge.dataset.status === "synced") &&
      window.tidewayNotes.db.status().pending === 0 &&
      !window.tidewayNotes.db.status().syncing,
  );
}
