// A tiny app importing the package by name, built by Vite, webpack 5 and esbuild
// with no plugin and no `await init()`: each build, served by the reference server, opens a
// database in Chromium, writes and reads, and sees its live query follow.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../sync/reference-server.mjs";
import { appDir, bundleWithEsbuild, newPage, serve, WAIT_LIMIT_MS, withBrowser } from "./helpers.mjs";

const APP = `
import { Tideway } from "tideway";

const db = await Tideway.open({ name: "bundled-" + crypto.randomUUID(), collections: { notes: { indexes: ["title"] } } });
const notes = db.collection("notes");
const seen = [];
const stop = notes.watch({ index: "title" }, (records) => seen.push(records.map((record) => record.data.title)));
await notes.put({ title: "bundled" }, { id: "n1" });
stop();
const stored = notes.get("n1").data.title;
await db.close();
await Tideway.deleteDatabase(db.name);
window.result = { stored, seen };
`;

const running = withBrowser();
const cleanups = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** Serves `site`, opens it and returns what the app put in `window.result`. */
async function run(site) {
  const server = await serve(site);
  cleanups.push(() => server.close());
  const page = await newPage(running.browser);
  await page.goto(server.url);
  await page.waitForFunction(() => window.result !== undefined || null, null, { timeout: WAIT_LIMIT_MS }).catch((error) => {
    throw new Error(`the app did not finish: ${page.errors.join("; ") || error.message}`);
  });
  const result = await page.evaluate(() => window.result);
  assert.deepEqual(page.errors, []);
  await page.close();
  return result;
}

const EXPECTED = { stored: "bundled", seen: [[], ["bundled"]] };

test("Vite builds the app with no plugin; the wasm module is emitted as an asset and loaded on first open", async () => {
  const app = appDir({ "main.js": APP, "index.html": `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="/main.js"></script>` });
  cleanups.push(app.remove);
  const { build } = await import("vite");
  const outDir = join(app.dir, "dist");
  await build({ root: app.dir, logLevel: "error", configFile: false, build: { outDir, target: "es2022" } });
  assert.deepEqual(await run(outDir), EXPECTED);
});

test("webpack 5 builds the app with no plugin and no configuration for the wasm module, which it emits as an asset", async () => {
  const app = appDir({ "main.js": APP });
  cleanups.push(app.remove);
  const { default: webpack } = await import("webpack");
  const outDir = join(app.dir, "dist");
  const compiler = webpack({
    mode: "production",
    context: app.dir,
    entry: "./main.js",
    output: { path: outDir, filename: "app.js" },
    resolve: { modules: [join(app.dir, "node_modules"), join(REPO_ROOT, "node_modules")] },
    performance: { hints: false },
  });
  const stats = await new Promise((resolve, reject) => compiler.run((error, stats) => (error ? reject(error) : resolve(stats))));
  await new Promise((resolve) => compiler.close(resolve));
  assert.deepEqual(stats.compilation.errors.map(String), []);
  assert.ok(Object.keys(stats.compilation.assets).some((name) => name.endsWith(".wasm")), "the wasm module was emitted");
  writeFileSync(join(outDir, "index.html"), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script src="./app.js"></script>`);
  assert.deepEqual(await run(outDir), EXPECTED);
});

test("esbuild bundles the app with no plugin; the wasm module is copied beside the bundle", async () => {
  const app = appDir({ "main.js": APP });
  cleanups.push(app.remove);
  assert.deepEqual(await run(await bundleWithEsbuild(app.dir, "main.js")), EXPECTED);
});
