#!/usr/bin/env node
// The browser benchmark, in one command: serves bench/, the built package and Dexie,
// and runs the same workloads through raw IndexedDB, Dexie and Tideway in headless
// Chromium, interleaved, then prints medians, ratios and targets:
//
//   1. cold start: each repetition in a fresh browser context with the HTTP cache off
//   2. warm local workloads, in one page (a first round is thrown away)
//   3. the cross-tab delay
//   4. sync against the reference server (bench/sync.mjs), each beside a plain baseline
//   5. the size of the wasm module, raw, gzipped and as brotli
//
//   node bench/run.mjs [--reps 5] [--json bench/results/latest.json] [--no-sync]
//
// Timings are reported, never asserted: a slow machine must not fail a build.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { startStaticServer } from "./static-server.mjs";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../tests/e2e/helpers.mjs";
import { NOTE_COUNT, makeNotes, sampleIds } from "./dataset.js";
import { median } from "./stats.mjs";
import { runSyncBench, syncTable } from "./sync.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

const { values: options } = parseArgs({
  options: {
    reps: { type: "string", default: "5" },
    json: { type: "string", default: here("results/latest.json") },
    "no-sync": { type: "boolean", default: false },
  },
});
const REPS = Math.max(1, Number.parseInt(options.reps, 10) || 5);
const ENGINES = ["raw", "dexie", "tideway"];

/** What the table shows, in order. `target` compares Tideway with a ceiling or a ratio to raw. */
const ROWS = [
  { key: "getFirstUs", label: "get by id ×1000, first read after open", unit: "µs/op", target: { maxTideway: 2 } },
  { key: "getRepeatedUs", label: "get by id ×1000, repeated reads", unit: "µs/op", target: { maxTideway: 2 } },
  { key: "singleWriteMs", label: "single durable write ×200", unit: "ms/op", target: { maxRatioToRaw: 1.2 } },
  { key: "bulkWriteMs", label: "bulk write 10k notes", unit: "ms", target: { maxRatioToRaw: 1.2 } },
  { key: "openLoadMs", label: "open + load 10k notes", unit: "ms", target: { maxRatioToRaw: 1.3 } },
  { key: "rangeQueryUs", label: "index range, 100 of 10k", unit: "µs/query" },
  { key: "materialiseAllMs", label: "all() of 10k after open (Tideway only)", unit: "ms" },
];

const pkgDir = here("../www/pkg/");
if (!existsSync(`${pkgDir}tideway.js`)) {
  console.error(`${pkgDir}tideway.js is missing: build the package first (bash scripts/build.sh)`);
  process.exit(1);
}

const server = await startStaticServer({
  mounts: [
    ["/bench/", here(".")],
    ["/pkg/", pkgDir],
    ["/vendor/", here("../node_modules/dexie/dist/")],
  ],
  // Cross-origin isolation gives performance.now() 5 µs steps instead of 100 µs.
  headers: {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
  },
});
// --expose-gc lets the page collect what came before a timed workload (see quiet() in workloads.js).
const browser = await chromium.launch({
  executablePath: CHROMIUM_PATH,
  args: [...CHROMIUM_ARGS, "--js-flags=--expose-gc"],
  headless: true,
});

const COLD_ROWS = [
  { key: "moduleMs", label: "load the code (Tideway: fetch + compile + instantiate)", unit: "ms" },
  { key: "openLoadMs", label: "open + load 10k notes, cold", unit: "ms", target: { maxRatioToRaw: 1.3 } },
  { key: "pageMs", label: "both: from no code to every note in memory", unit: "ms" },
  { key: "firstGetUs", label: "get by id ×1000, first reads after a cold open", unit: "µs/op", target: { maxTideway: 2 } },
];

try {
  const cold = await coldStart(browser, server.url, REPS);
  console.log(table(cold.medians, COLD_ROWS));
  console.log();
  console.log(`Cold start: medians of ${REPS} repetitions, each in a fresh browser context with the HTTP cache off.`);
  for (const problem of cold.problems) console.log(`WARNING: ${problem}`);
  console.log();

  const page = await browser.newPage();
  page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  await page.goto(`${server.url}bench/index.html`);
  await page.waitForSelector('html[data-ready="true"]');
  const env = await page.evaluate(() => window.bench.environment());
  const started = Date.now();
  log(`${browser.version()} · crossOriginIsolated=${env.crossOriginIsolated} · timer step ${(env.timerResolutionMs * 1000).toFixed(0)} µs`);
  log(`1 warm-up + ${REPS} measured repetitions per engine, engines interleaved`);

  const samples = Object.fromEntries(ENGINES.map((engine) => [engine, []]));
  const problems = new Set();
  for (let rep = 0; rep <= REPS; rep++) {
    // Each round starts with another engine, so none always follows the same one.
    for (const engine of ENGINES.map((_, i) => ENGINES[(i + rep) % ENGINES.length])) {
      const result = await page.evaluate(([engine, rep]) => window.bench.runRep(engine, rep), [engine, rep]);
      for (const problem of check(engine, result)) problems.add(problem);
      if (rep > 0) samples[engine].push(result);
      log(`${rep === 0 ? "warm-up" : `rep ${rep}/${REPS}`} ${engine.padEnd(7)} ${summary(result)}`);
    }
  }

  const medians = Object.fromEntries(
    ENGINES.map((engine) => [
      engine,
      Object.fromEntries(ROWS.map(({ key }) => [key, median(samples[engine].map((r) => r[key]))])),
    ]),
  );
  console.log();
  console.log(table(medians, ROWS));
  console.log();
  console.log(`Medians of ${REPS} repetitions; ratios are Tideway ÷ the other (below 1 = Tideway faster).`);
  console.log(`Took ${((Date.now() - started) / 1000).toFixed(0)} s. Chromium ${browser.version()}.`);
  for (const problem of problems) console.log(`WARNING: ${problem}`);

  const crossTab = await crossTabDelay(browser, server.url, 200);
  console.log();
  console.log(
    `Cross-tab delay, a put resolved in tab A -> tab B's subscriber (and synchronous get) has it: ` +
      `median ${crossTab.median.toFixed(2)} ms, p95 ${crossTab.p95.toFixed(2)} ms over ${crossTab.samples.length} writes; ` +
      `a bulkPut of 1000 notes called in tab A -> tab B has them all: median ${crossTab.batchMedian.toFixed(1)} ms over ` +
      `${crossTab.batchSamples.length} (tab A's call resolved after ${crossTab.batchCallMedian.toFixed(1)} ms).`,
  );

  let sync = null;
  if (!options["no-sync"]) {
    sync = await runSyncBench({ reps: REPS, log });
    console.log();
    console.log(syncTable(sync));
    console.log(`Sync: medians of ${REPS} repetitions against the reference server (release build, SQLite), each in a fresh browser context.`);
    for (const problem of sync.problems) console.log(`WARNING: ${problem}`);
  }

  const module = moduleSize();
  console.log();
  console.log(
    `wasm module: ${kb(module.raw)} KB, ${kb(module.gzip)} KB gzipped (target ≤ 200 KB gzipped: ${module.gzip <= 200 * 1024 ? "yes" : "NO"}), ` +
      `${kb(module.brotli)} KB as brotli (what the reference server sends a browser).`,
  );

  mkdirSync(dirname(options.json), { recursive: true });
  writeFileSync(
    options.json,
    JSON.stringify(
      { date: new Date().toISOString(), browser: browser.version(), env, reps: REPS, cold, medians, samples, crossTab, sync, module },
      null,
      2,
    ),
  );
  console.log(`Raw samples: ${options.json}`);
} finally {
  await browser.close();
  await server.close();
}

/**
 * Two tabs of one browser context on one database: how long after tab A's `put`
 * resolves tab B's subscriber hears of it, for `writes` sequential writes; then, for
 * `batches` bulk writes of 1000 notes each, how long after tab A's `bulkPut` is called
 * B has every note of the batch, and how long the call took. Clocks are comparable
 * across tabs through `performance.timeOrigin`.
 */
async function crossTabDelay(browser, url, writes, batches = 10) {
  const context = await browser.newContext();
  const name = `bench-cross-tab-${Date.now()}`;
  const open = async () => {
    const page = await context.newPage();
    await page.goto(`${url}bench/index.html`);
    await page.waitForSelector('html[data-ready="true"]');
    await page.evaluate(async (name) => {
      const { default: init, Tideway } = await import("/pkg/index.js");
      await init();
      window.notes = (window.db = await Tideway.open({ name, collections: { notes: {} } })).collection("notes");
      window.arrivals = new Map();
      window.notes.subscribe((changes) => {
        const at = performance.timeOrigin + performance.now();
        for (const change of changes) if (window.notes.get(change.id)) window.arrivals.set(change.id, at);
      });
    }, name);
    return page;
  };
  const [a, b] = [await open(), await open()];
  const samples = [];
  const batchSamples = [];
  const batchCalls = [];
  try {
    for (let i = 0; i < writes; i++) {
      const id = `n${i}`;
      const resolved = await a.evaluate(async (id) => {
        await window.notes.put({ title: id, body: "x".repeat(400) }, { id });
        return performance.timeOrigin + performance.now();
      }, id);
      await b.waitForFunction((id) => window.arrivals.has(id), id, { timeout: 10_000, polling: 1 });
      samples.push((await b.evaluate((id) => window.arrivals.get(id), id)) - resolved);
    }
    for (let batch = 0; batch < batches; batch++) {
      const ids = Array.from({ length: 1000 }, (_, i) => `b${batch}-${i}`);
      // Timed from the call: tab B may have the notes before tab A's call
      // resolves, which builds the 1000 records it answers with after the commit.
      const [called, resolved] = await a.evaluate(async (ids) => {
        const entries = ids.map((id) => ({ id, data: { title: id, body: "x".repeat(400) } }));
        const called = performance.timeOrigin + performance.now();
        await window.notes.bulkPut(entries);
        return [called, performance.timeOrigin + performance.now()];
      }, ids);
      await b.waitForFunction((ids) => ids.every((id) => window.arrivals.has(id)), ids, { timeout: 10_000, polling: 1 });
      batchSamples.push((await b.evaluate((ids) => Math.max(...ids.map((id) => window.arrivals.get(id))), ids)) - called);
      batchCalls.push(resolved - called);
    }
  } finally {
    await context.close();
  }
  const sorted = [...samples].sort((x, y) => x - y);
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
  return { median: median(samples), p95: at(95), samples, batchMedian: median(batchSamples), batchSamples, batchCallMedian: median(batchCalls) };
}

/**
 * Cold start, per repetition and engine (order rotated): a fresh browser context is
 * filled in one page, then a second page with the HTTP cache off (so the code is fetched
 * and compiled again) times loading the code, opening the database and reading it all.
 */
async function coldStart(browser, url, reps) {
  const ids = sampleIds(makeNotes(NOTE_COUNT), 1000, 11);
  const samples = Object.fromEntries(ENGINES.map((engine) => [engine, []]));
  const problems = new Set();
  for (let rep = 1; rep <= reps; rep++) {
    for (const engine of ENGINES.map((_, i) => ENGINES[(i + rep) % ENGINES.length])) {
      const context = await browser.newContext();
      try {
        const name = `bench-cold-${engine}`;
        const filler = await context.newPage();
        await filler.goto(`${url}bench/cold.html`);
        await filler.waitForSelector('html[data-ready="true"]');
        await filler.evaluate(([engine, name]) => window.cold.fill(engine, name), [engine, name]);
        await filler.close();
        const page = await context.newPage();
        page.on("pageerror", (error) => log(`page error: ${error.message}`));
        const cdp = await context.newCDPSession(page);
        await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
        await page.goto(`${url}bench/cold.html`);
        await page.waitForSelector('html[data-ready="true"]');
        const result = await page.evaluate(([engine, name, ids]) => window.cold[engine](name, ids), [engine, name, ids]);
        result.pageMs = result.moduleMs + result.openLoadMs;
        if (result.loaded !== NOTE_COUNT) problems.add(`${engine}: a cold open loaded ${result.loaded} notes, expected ${NOTE_COUNT}`);
        if (engine === "tideway" && result.found !== ids.length) problems.add(`tideway: cold gets found ${result.found} of ${ids.length}`);
        samples[engine].push(result);
        log(`cold rep ${rep}/${reps} ${engine.padEnd(7)} code ${result.moduleMs.toFixed(0)} ms · open+load ${result.openLoadMs.toFixed(0)} ms`);
      } finally {
        await context.close();
      }
    }
  }
  const medians = Object.fromEntries(
    ENGINES.map((engine) => [engine, Object.fromEntries(COLD_ROWS.map(({ key }) => [key, median(samples[engine].map((r) => r[key]))]))]),
  );
  medians.raw.moduleMs = undefined;
  return { medians, samples, problems: [...problems] };
}

/**
 * The built module's size, as a page downloads it: gzip and brotli at their highest
 * levels, as `scripts/build.sh` compresses the demo's copy for the reference server.
 */
function moduleSize() {
  const bytes = readFileSync(`${pkgDir}tideway_bg.wasm`);
  const params = { [zlib.BROTLI_PARAM_QUALITY]: zlib.BROTLI_MAX_QUALITY, [zlib.BROTLI_PARAM_SIZE_HINT]: bytes.length };
  return { raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length, brotli: brotliCompressSync(bytes, { params }).length };
}

function kb(bytes) {
  return (bytes / 1024).toFixed(0);
}

function log(line) {
  process.stderr.write(`${line}\n`);
}

/** Counts every engine must get right; a fast wrong answer is not a result. */
function check(engine, { checks }) {
  const problems = [];
  if (checks.loaded !== 10_200) problems.push(`${engine}: open+load saw ${checks.loaded} notes, expected 10200`);
  if (checks.found !== 1000) problems.push(`${engine}: get found ${checks.found} of 1000 ids`);
  if (checks.rangeAverage !== 100) problems.push(`${engine}: range queries returned ${checks.rangeAverage} notes on average, expected 100`);
  return problems;
}

function summary(r) {
  return [
    `bulk ${r.bulkWriteMs.toFixed(0)} ms`,
    `write ${r.singleWriteMs.toFixed(2)} ms`,
    `open+load ${r.openLoadMs.toFixed(0)} ms`,
    `get ${r.getFirstUs.toFixed(2)}/${r.getRepeatedUs.toFixed(2)} µs`,
    `range ${r.rangeQueryUs.toFixed(0)} µs`,
  ].join(" · ");
}


function format(value) {
  if (value === undefined) return "—";
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function ratio(a, b) {
  if (a === undefined || b === undefined || b === 0) return "—";
  const r = a / b;
  return `${r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×`;
}

function verdict(target, tideway, raw) {
  if (!target) return ["", ""];
  if (target.maxTideway !== undefined) {
    return [`≤ ${target.maxTideway} µs`, tideway <= target.maxTideway ? "yes" : "NO"];
  }
  return [`≤ ${target.maxRatioToRaw}× raw`, tideway / raw <= target.maxRatioToRaw ? "yes" : "NO"];
}

function table(medians, rowsShown) {
  const header = ["workload", "unit", "raw IDB", "Dexie", "Tideway", "T/raw", "T/Dexie", "target", "met"];
  const rows = rowsShown.map(({ key, label, unit, target }) => {
    const [raw, dexie, tideway] = ENGINES.map((engine) => medians[engine][key]);
    return [label, unit, format(raw), format(dexie), format(tideway), ratio(tideway, raw), ratio(tideway, dexie), ...verdict(target, tideway, raw)];
  });
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => row[i].length)));
  const line = (row) =>
    row.map((cell, i) => (i === 0 || i === 1 || i >= 7 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
