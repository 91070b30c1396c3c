// Set-up for the sync tests: the real reference server (on a throwaway SQLite
// database, serving a harness page and the built package), and headless
// Chromium pages that open Tideway databases syncing with it.

import { cpSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../e2e/helpers.mjs";
import { REPO_ROOT, startReferenceServer } from "./reference-server.mjs";

export { REPO_ROOT };
const PKG = process.env.TIDEWAY_PKG_DIR ?? join(REPO_ROOT, "pkg");

/** Tokens the server accepts; each test signs in as its own user, so tests never see each other's data. */
export const USERS = ["offline", "converge", "manual", "rejected", "auth", "restart", "policy", "backoff", "handsync", "bfcache", "crash", "worker", "swstop", "classic", "unanswered", "orphaned", "panic", "panicsync", "notdata", "gzip", "refused", "offthread", "onthread", "silent", "plainfirst", "remembered", "ahead", "onetrip", "strict", "slowpage", "scripts", "closing", "chained", "burst", "pulled"];

/** How long a page may take to load the package and say it is ready. */
export const READY_LIMIT_MS = 15_000;

const HARNESS = `<!doctype html><meta charset="utf-8"><title>Tideway sync harness</title>
<script type="module">
  import { Tideway } from "/pkg/index.js";
  window.Tideway = Tideway;
  document.documentElement.dataset.ready = "true";
</script>`;

/** Where `bash scripts/build.sh faults` builds the package with its test hooks. */
export const FAULTS_PKG = join(process.env.CARGO_TARGET_DIR ?? join(REPO_ROOT, "target"), "pkg-faults");

/**
 * A reference server on its own database, serving the harness page and the package
 * built in `pkg`; `restart()` keeps both and the port.
 */
export async function startServer({ pkg = PKG } = {}) {
  const built = pkg === FAULTS_PKG ? "bash scripts/build.sh faults" : "bash scripts/build.sh";
  if (!existsSync(join(pkg, "tideway.js"))) throw new Error(`${join(pkg, "tideway.js")} is missing: build the package first (${built})`);
  const dir = mkdtempSync(join(tmpdir(), "tideway-sync-"));
  const site = join(dir, "site");
  cpSync(pkg, join(site, "pkg"), { recursive: true });
  writeFileSync(join(site, "index.html"), HARNESS);
  const server = await startReferenceServer({ dir, staticDir: site, tokens: USERS.map((user) => `${user}-token:${user}`) });
  const pullAs = server.pullAll;
  /** Everything the server holds for `user`, pulled from the start as a fresh client would. */
  server.pullAll = (user) => pullAs(`${user}-token`);
  return server;
}

/**
 * A reference server and a browser for the test file that calls this: started before
 * its tests (`started` receives both), closed after them. `options` go to `startServer`.
 */
export function serverAndBrowser(started, options) {
  let running = {};
  before(async () => {
    running = { server: await startServer(options), browser: await launchBrowser() };
    await started(running);
  });
  after(async () => {
    await running.browser?.close();
    await running.server?.close();
  });
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
    // Playwright turns the back/forward cache off; browsers users run keep it on.
    ignoreDefaultArgs: ["--disable-back-forward-cache"],
  });
}

/**
 * A device: its own browser context (its own IndexedDB), on the harness page.
 * Page errors are collected so a test can check none happened. `prepare`, if
 * given, is called with the context before its page opens (to route requests,
 * add an init script).
 */
export async function openDevice(browser, server, prepare) {
  const context = await browser.newContext();
  await prepare?.(context);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(server.url, { timeout: READY_LIMIT_MS });
  await page.waitForSelector('html[data-ready="true"]', { timeout: READY_LIMIT_MS });
  return { context, page, errors };
}

/**
 * Opens `window.db` (notes, indexed by title) and `window.notes` in a tab's page: the
 * database `name`, syncing with the server as `user` unless `user` is null
 * (automatically unless `auto` is false), at `url` (the page's origin unless given).
 */
export async function openDb({ page }, name, user, { auto = true, url = null } = {}) {
  await page.evaluate(
    async ({ name, user, auto, url }) => {
      const sync = user && { url: url ?? location.origin, getToken: () => `${user}-token`, interval: 0, debounce: 20, auto };
      window.db = await window.Tideway.open({ name, collections: { notes: { indexes: ["title"] } }, ...(sync ? { sync } : {}) });
      window.notes = window.db.collection("notes");
    },
    { name, user, auto, url },
  );
}

/** The longest any test waits for one thing to happen. */
export const WAIT_LIMIT_MS = 15_000;

/**
 * Waits until `predicate(arg)` is true in the page, for at most `timeout` ms; the error
 * names `what` was awaited.
 */
export async function waitInPage(page, what, predicate, arg, timeout = WAIT_LIMIT_MS) {
  try {
    await page.waitForFunction(predicate, arg, { timeout });
  } catch (error) {
    throw new Error(`waited ${timeout} ms for ${what}: ${error.message.split("\n")[0]}`);
  }
}

/**
 * Calls `check` (which may be async) every 100 ms of the test's own clock until it
 * returns a truthy value, and returns that value; after `timeout` ms it fails, naming
 * `what` was awaited. For pages whose clock the test controls, where polling inside the
 * page would depend on that clock.
 */
export async function eventually(what, check, timeout = WAIT_LIMIT_MS) {
  const end = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= end) throw new Error(`waited ${timeout} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
