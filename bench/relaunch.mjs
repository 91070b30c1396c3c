#!/usr/bin/env node
// Open + load of 10k notes in later browser sessions, as a returning user's page pays
// it: each engine fills a fresh profile, then the browser is closed and started again
// on that profile for each open, so IndexedDB, the HTTP cache and V8's cache of
// compiled code are read from disk, as after a restart. The files are served
// cacheable (an hour), so a later session takes the module from the HTTP cache.
//
//   session 1: fill (not timed)
//   session 2: the first open after the write
//   session 3: the open after that
//   session 4 (Tideway only): as session 3, with the HTTP cache and the code cache
//              deleted first, to show what the cached module is worth
//
//   node bench/relaunch.mjs [--reps 5] [--linger 6000]
//
// `--linger` keeps each session open that many ms after its open, so the browser
// writes its caches before it closes. Medians are printed; nothing is asserted.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { startStaticServer } from "./static-server.mjs";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../tests/e2e/helpers.mjs";
import { NOTE_COUNT, makeNotes, sampleIds } from "./dataset.js";
import { median } from "./stats.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const { values: options } = parseArgs({
  options: { reps: { type: "string", default: "5" }, linger: { type: "string", default: "6000" } },
});
const REPS = Math.max(1, Number.parseInt(options.reps, 10) || 5);
const LINGER = Math.max(0, Number.parseInt(options.linger, 10) || 0);

const server = await startStaticServer({
  mounts: [
    ["/bench/", here(".")],
    ["/pkg/", here("../www/pkg/")],
    ["/vendor/", here("../node_modules/dexie/dist/")],
  ],
  headers: {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cache-control": "max-age=3600",
  },
});
const ids = sampleIds(makeNotes(NOTE_COUNT), 1000, 11);

/** One browser session on `profile`: a page of bench/cold.html runs `call(engine, ids)`. */
async function session(profile, engine, call) {
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
  try {
    const page = await context.newPage();
    await page.goto(`${server.url}bench/cold.html`);
    await page.waitForSelector('html[data-ready="true"]');
    const result = await page.evaluate(call, [engine, ids]);
    await new Promise((resolve) => setTimeout(resolve, LINGER));
    return result;
  } finally {
    await context.close();
  }
}

const open = ([engine, ids]) => window.cold[engine]("notes", ids);
const ROWS = [
  ["raw", "second", "raw IndexedDB, first session after the write"],
  ["raw", "third", "raw IndexedDB, the session after"],
  ["tideway", "second", "Tideway, first session after the write"],
  ["tideway", "third", "Tideway, the session after"],
  ["tideway", "uncached", "Tideway, the session after, HTTP and code caches deleted"],
];
const samples = Object.fromEntries(ROWS.map(([engine, when]) => [`${engine} ${when}`, []]));
for (let rep = 1; rep <= REPS; rep++) {
  for (const engine of rep % 2 ? ["raw", "tideway"] : ["tideway", "raw"]) {
    const profile = mkdtempSync(join(tmpdir(), "tideway-relaunch-"));
    try {
      await session(profile, engine, ([engine]) => window.cold.fill(engine, "notes"));
      samples[`${engine} second`].push(await session(profile, engine, open));
      samples[`${engine} third`].push(await session(profile, engine, open));
      if (engine === "tideway") {
        for (const cache of ["Cache", "Code Cache"]) rmSync(join(profile, "Default", cache), { recursive: true, force: true });
        samples[`${engine} uncached`].push(await session(profile, engine, open));
      }
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
    process.stderr.write(`rep ${rep}/${REPS} ${engine} done\n`);
  }
}
await server.close();

const rawOpen = { second: median(samples["raw second"].map((r) => r.openLoadMs)), third: median(samples["raw third"].map((r) => r.openLoadMs)) };
console.log(`open + load ${NOTE_COUNT} notes in later browser sessions (medians of ${REPS})`);
console.log(`${"".padEnd(60)}  code ms  open+load ms  ÷ raw`);
for (const [engine, when, label] of ROWS) {
  const rows = samples[`${engine} ${when}`];
  const openLoad = median(rows.map((r) => r.openLoadMs));
  const code = engine === "raw" ? "—" : median(rows.map((r) => r.moduleMs)).toFixed(0);
  const ratio = engine === "raw" ? "—" : `${(openLoad / rawOpen[when === "second" ? "second" : "third"]).toFixed(2)}×`;
  console.log(`${label.padEnd(60)}  ${code.padStart(7)}  ${openLoad.toFixed(0).padStart(12)}  ${ratio.padStart(5)}`);
}
