// Set-up for the sync tests: the real reference server (on a throwaway SQLite
// database, serving a harness page and the built package), and headless
// Chromium pages that open Tideway databases syncing with it.

import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SERVER_BIN = process.env.TIDEWAY_SERVER_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO_ROOT, "target"), "debug/tideway-server");
const PKG = process.env.TIDEWAY_PKG_DIR ?? join(REPO_ROOT, "pkg");

/** Tokens the server accepts; each test signs in as its own user, so tests never see each other's data. */
export const USERS = ["offline", "converge", "manual", "rejected", "auth", "restart", "policy"];

const HARNESS = `<!doctype html><meta charset="utf-8"><title>Tideway sync harness</title>
<script type="module">
  import init, { Tideway } from "/pkg/tideway.js";
  await init();
  window.Tideway = Tideway;
  document.documentElement.dataset.ready = "true";
</script>`;

/** A reference server on its own database and directory; `restart()` keeps both and the port. */
export async function startServer() {
  for (const [path, what] of [[SERVER_BIN, "the server (cargo build -p tideway-server)"], [join(PKG, "tideway.js"), "the package (bash scripts/build.sh)"]]) {
    if (!existsSync(path)) throw new Error(`${path} is missing: build ${what} first`);
  }
  const dir = mkdtempSync(join(tmpdir(), "tideway-sync-"));
  const site = join(dir, "site");
  cpSync(PKG, join(site, "pkg"), { recursive: true });
  writeFileSync(join(site, "index.html"), HARNESS);
  const db = `sqlite://${join(dir, "server.db")}`;
  const tokens = USERS.flatMap((user) => ["--token", `${user}-token:${user}`]);
  const server = { dir, url: null, process: null };

  server.start = async (listen = "127.0.0.1:0") => {
    const child = spawn(SERVER_BIN, ["--listen", listen, "--db", db, "--static", site, ...tokens], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: "warn" },
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    server.url = await new Promise((resolve, reject) => {
      let stdout = "";
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
        const match = stdout.match(/listening on (http:\/\/\S+)/);
        if (match) resolve(match[1]);
      });
      child.on("exit", (code) => reject(new Error(`the server exited with ${code}: ${stderr}`)));
    });
    server.process = child;
  };
  server.stop = () =>
    new Promise((resolve) => {
      const child = server.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", resolve);
      child.kill("SIGKILL");
    });
  server.restart = async () => {
    const listen = new URL(server.url).host;
    await server.stop();
    await server.start(listen);
  };
  server.close = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  /** Everything the server holds for `user`, pulled from the start as a fresh client would. */
  server.pullAll = async (user) => {
    const entities = [];
    let cursor = "";
    for (;;) {
      const response = await fetch(`${server.url}/v1/pull?limit=1000&cursor=${encodeURIComponent(cursor)}`, {
        headers: { authorization: `Bearer ${user}-token` },
      });
      if (!response.ok) throw new Error(`pull answered ${response.status}`);
      const page = await response.json();
      entities.push(...page.changes);
      cursor = page.cursor;
      if (!page.hasMore) return entities;
    }
  };
  await server.start();
  return server;
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
    headless: true,
  });
}

/**
 * A device: its own browser context (its own IndexedDB), on the harness page.
 * Page errors are collected so a test can check none happened.
 */
export async function openDevice(browser, server) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(server.url);
  await page.waitForSelector('html[data-ready="true"]');
  return { context, page, errors };
}
