#!/usr/bin/env node
// The sync benchmark: Tideway's push and pull against the reference server (release
// build, SQLite), each beside a plain baseline doing the same work in the same browser:
//
//   push   10k queued writes pushed by `db.sync()`   vs  the same rows sent by fetch in
//                                                        pushes of 1000 (the protocol's max);
//          also after another tab wrote one note, and with another tab open, whose mirror
//          takes in every answer the push records (the push's time, then how much longer
//          that tab took to show every note synced); and how long after the push its
//          acknowledgements, logged, were folded into the entities' records
//   pull   100k changes pulled into a new database   vs  the same pages (1000) fetched and
//                                                        written to raw IndexedDB
//   server the server's own push rate: 100k rows sent from Node in pushes of 1000
//   reopen the database each Tideway pull filled, opened again in a cold page (HTTP
//          cache off): `Tideway.open` loading every synced note, vs raw IndexedDB's
//          open + getAll + JSON.parse of the same database, in a page of its own
//   memory the JS heap and wasm memory 10k and 100k notes take once opened and queried;
//          the wasm memory writing them takes, in one `bulkPut` and in `bulkPut`s of 1000
//
//   node bench/sync.mjs [--reps 5] [--push 10000] [--pull 100000]
//
// Every repetition runs in a fresh browser context (an empty IndexedDB), the two sides
// alternate which goes first, and the figures are medians. Reported, never asserted.

import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../tests/e2e/helpers.mjs";
import { startReferenceServer } from "../tests/sync/reference-server.mjs";
import { makeNotes, putBatches } from "./dataset.js";
import { median } from "./stats.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

/**
 * Builds the reference server in release mode and returns its path. Built each time
 * (cargo does nothing when it is up to date), so that the figures are never those of
 * an older server; the test harness it is passed to starts the debug build by default.
 */
export function buildReleaseServer(log) {
  log("building the reference server (release)");
  const built = spawnSync("cargo", ["build", "--release", "-q", "-p", "tideway-server", "--bin", "tideway-server"], {
    stdio: "inherit",
    env: { ...process.env, CARGO_PROFILE_RELEASE_LTO: "false", CARGO_PROFILE_RELEASE_CODEGEN_UNITS: "16" },
  });
  if (built.status !== 0) throw new Error("building the reference server failed");
  return join(process.env.CARGO_TARGET_DIR ?? here("../target"), "release/tideway-server");
}

/** The bench's page, the package and the dataset, in `dir`/site for the server to serve. */
export function benchSite(dir) {
  const site = join(dir, "site");
  cpSync(here("../www/pkg/"), join(site, "pkg"), { recursive: true });
  for (const file of ["sync-workloads.js", "cold.js", "dataset.js", "idb.js"]) cpSync(here(file), join(site, "bench", file));
  writeFileSync(
    join(site, "index.html"),
    `<!doctype html><meta charset="utf-8"><title>Tideway sync bench</title>
<script type="module">window.bench = await import("/bench/sync-workloads.js"); document.documentElement.dataset.ready = "true";</script>`,
  );
  return site;
}

/** Runs the sync benchmark and returns its figures; `log` receives progress lines. */
export async function runSyncBench({ reps = 5, pushRows = 10_000, pullRows = 100_000, log = () => {} } = {}) {
  const serverBin = buildReleaseServer(log);
  const dir = mkdtempSync(join(tmpdir(), "tideway-sync-bench-"));
  const site = benchSite(dir);
  const tokens = ["seed", ...Array.from({ length: reps + 1 }, (_, i) => [`push-t${i}`, `push-r${i}`, `push-e${i}`, `push-w${i}`]).flat()];
  const server = await startReferenceServer({ dir, staticDir: site, tokens: tokens.map((t) => `${t}:${t}`), bin: serverBin });
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, "--js-flags=--expose-gc", "--enable-precise-memory-info"],
    headless: true,
  });

  /**
   * Runs each `[call, ...args]` in its own page, one after the other, in one fresh
   * context, the pages after the first with the HTTP cache off (cold: the module is
   * fetched and compiled again); the results, or the one result of a single call.
   */
  const inFreshContext = async (...calls) => {
    const single = typeof calls[0] === "string";
    if (single) calls = [calls];
    const context = await browser.newContext();
    try {
      const results = [];
      for (const [call, ...args] of calls) {
        const page = await context.newPage();
        page.on("pageerror", (error) => log(`page error: ${error.message}`));
        if (results.length > 0) await (await context.newCDPSession(page)).send("Network.setCacheDisabled", { cacheDisabled: true });
        await page.goto(server.url);
        await page.waitForSelector('html[data-ready="true"]');
        results.push(await page.evaluate(([call, args]) => window.bench[call](...args), [call, args]));
        await page.close();
      }
      return single ? results[0] : results;
    } finally {
      await context.close();
    }
  };

  /**
   * A push of `rows` notes in one page with another tab of the same context open on the
   * database: the push's time, and how much longer that tab took to show every note synced.
   */
  const pushWatched = async (token, rows) => {
    const context = await browser.newContext();
    try {
      const [watching, pushing] = [await context.newPage(), await context.newPage()];
      for (const page of [watching, pushing]) {
        page.on("pageerror", (error) => log(`page error: ${error.message}`));
        await page.goto(server.url);
        await page.waitForSelector('html[data-ready="true"]');
      }
      await watching.evaluate((token) => window.bench.watchTideway(token), token);
      await pushing.evaluate(([token, rows]) => window.bench.writeTideway(token, rows), [token, rows]);
      const until = async (done, what) => {
        for (const end = Date.now() + 120_000; ; await new Promise((resolve) => setTimeout(resolve, 20))) {
          const count = await watching.evaluate(() => window.bench.watchedCount());
          if (done(count)) return;
          if (Date.now() > end) throw new Error(`the other tab never showed ${what}: ${JSON.stringify(count)}`);
        }
      };
      await until((count) => count.notes === rows, "every note written");
      const result = await pushing.evaluate(() => window.bench.syncTideway());
      const pushed = Date.now();
      await until((count) => count.synced === rows, "every note synced");
      return { ...result, otherTabMs: Date.now() - pushed };
    } finally {
      await context.close();
    }
  };

  try {
    const results = {
      push: { tideway: [], raw: [], elsewhere: [], watched: [], otherTab: [], fold: [] },
      pull: { tideway: [], raw: [] },
      reopen: { tideway: [], raw: [] },
      server: null,
    };
    const problems = new Set();
    const check = (what, result, expected) => {
      if (result.rows !== expected) problems.add(`${what} saw ${result.rows} rows, expected ${expected}`);
    };

    // Push: rep 0 warms the server's caches and the browser's code cache and is thrown away.
    // "elsewhere": Tideway's push once another tab has written one note (pushed too);
    // "watched": with another tab open on the database.
    const sides = ["tideway", "raw", "elsewhere", "watched"];
    for (let rep = 0; rep <= reps; rep++) {
      const order = [...sides.slice(rep % sides.length), ...sides.slice(0, rep % sides.length)];
      for (const side of order) {
        const token = `push-${side[0]}${rep}`;
        const result = side === "raw"
          ? await inFreshContext("pushRaw", token, pushRows)
          : side === "watched"
            ? await pushWatched(token, pushRows)
            : await inFreshContext("pushTideway", token, pushRows, side === "elsewhere");
        check(`push (${side})`, result, side === "elsewhere" ? pushRows + 1 : pushRows);
        if (rep > 0) results.push[side].push(result.ms);
        if (rep > 0 && side === "watched") results.push.otherTab.push(result.otherTabMs);
        if (rep > 0 && side === "tideway") results.push.fold.push(result.foldMs);
        const otherTab = side === "watched" ? `, the other tab ${result.otherTabMs} ms later` : "";
        log(`${rep ? `rep ${rep}/${reps}` : "warm-up"} push ${side.padEnd(9)} ${result.ms.toFixed(0)} ms (${rate(pushRows, result.ms)} rows/s)${otherTab}`);
      }
    }

    // The server's own rate, and the data every pull reads.
    results.server = await seed(server.url, "seed", pullRows);
    log(`server: ${pullRows} rows pushed from Node in ${results.server.ms.toFixed(0)} ms (${rate(pullRows, results.server.ms)} rows/s)`);

    for (let rep = 0; rep <= reps; rep++) {
      const order = rep % 2 ? ["raw", "tideway"] : ["tideway", "raw"];
      for (const side of order) {
        if (side === "raw") {
          const result = await inFreshContext("pullRaw", "seed");
          check("pull (raw)", result, pullRows);
          if (rep > 0) results.pull.raw.push(result.ms);
          log(`${rep ? `rep ${rep}/${reps}` : "warm-up"} pull raw     ${result.ms.toFixed(0)} ms (${rate(pullRows, result.ms)} rows/s)`);
          continue;
        }
        // The database the pull filled, opened again cold by each side, in turn.
        const reopens = rep % 2 ? ["reopenRaw", "reopenTideway"] : ["reopenTideway", "reopenRaw"];
        const [result, ...opened] = await inFreshContext(["pullTideway", "seed"], ...reopens.map((call) => [call, "seed"]));
        check("pull (tideway)", result, pullRows);
        if (rep > 0) results.pull.tideway.push(result.ms);
        results.pull.wire = result.wire;
        results.pull.wasmBytes = result.wasmBytes;
        log(`${rep ? `rep ${rep}/${reps}` : "warm-up"} pull tideway ${result.ms.toFixed(0)} ms (${rate(pullRows, result.ms)} rows/s)`);
        for (const [i, reopened] of opened.entries()) {
          const who = reopens[i] === "reopenRaw" ? "raw" : "tideway";
          check(`reopen (${who})`, reopened, pullRows);
          if (rep > 0) results.reopen[who].push(reopened.ms);
          log(`${rep ? `rep ${rep}/${reps}` : "warm-up"} reopen ${who.padEnd(7)} ${reopened.ms.toFixed(0)} ms`);
        }
      }
    }

    // Memory once a page holds 10k and 100k notes (opened, then queried).
    results.memory = [];
    for (const count of [10_000, pullRows]) {
      const [, result] = await inFreshContext(["fill", count], ["memory", count]);
      if (result.rows !== count || result.found !== 10) problems.add(`memory: ${result.rows} notes loaded, ${result.found} found of 10`);
      results.memory.push({ count, ...result });
      log(`memory ${count}: JS heap ${perEntity(result.heapBytes, count)} B, wasm ${perEntity(result.wasmBytes, count)} B per note`);
    }
    // What bulk writes hold at once: in one call, and in calls of 1000.
    results.bulkMemory = [];
    for (const [count, perCall] of [[10_000, 10_000], [pullRows, pullRows], [pullRows, 1000]]) {
      const result = await inFreshContext("bulkMemory", count, perCall);
      if (result.rows !== count) problems.add(`bulk memory: ${result.rows} notes written of ${count}`);
      results.bulkMemory.push({ count, perCall, ...result });
      log(`bulk memory ${count} in calls of ${perCall}: wasm ${perEntity(result.wasmBytes, count)} B per note`);
    }

    const medians = {
      push: { tideway: median(results.push.tideway), raw: median(results.push.raw) },
      pushElsewhere: { tideway: median(results.push.elsewhere), raw: median(results.push.raw) },
      pushWatched: { tideway: median(results.push.watched), raw: median(results.push.raw) },
      otherTabMs: median(results.push.otherTab),
      foldMs: median(results.push.fold),
      pull: { tideway: median(results.pull.tideway), raw: median(results.pull.raw) },
      reopen: { tideway: median(results.reopen.tideway), raw: median(results.reopen.raw) },
    };
    return { pushRows, pullRows, reps, results, medians, problems: [...problems] };
  } finally {
    await browser.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Pushes `rows` notes as `token` from Node in pushes of the protocol's maximum, and times it. */
export async function seed(url, token, rows) {
  const notes = makeNotes(rows, { seed: 7 });
  const started = performance.now();
  for (const mutations of putBatches(notes)) {
    const response = await fetch(`${url}/v1/push`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ clientId: "seed", mutations }),
    });
    if (!response.ok) throw new Error(`seeding: push answered ${response.status} ${await response.text()}`);
    await response.arrayBuffer();
  }
  return { ms: performance.now() - started, rows };
}

function perEntity(bytes, count) {
  return Math.round(bytes / count).toLocaleString("en-US");
}

export function rate(rows, ms) {
  return Math.round((rows * 1000) / ms).toLocaleString("en-US");
}


/** The sync table, one line per workload: Tideway beside its baseline. */
export function syncTable({ pushRows, pullRows, medians, results }) {
  const rows = [
    ["workload", "raw (ms)", "Tideway (ms)", "raw rows/s", "Tideway rows/s", "T/raw", "target", "met"],
    line(`push ${pushRows.toLocaleString("en-US")} queued writes`, pushRows, medians.push, 1.5),
    line(`the same, after another tab wrote one note`, pushRows, medians.pushElsewhere, 1.5),
    line(`the same, with another tab open`, pushRows, medians.pushWatched, 1.5),
    line(`pull ${pullRows.toLocaleString("en-US")} into a new database`, pullRows, medians.pull, 1.3),
    line(`open + load those ${pullRows.toLocaleString("en-US")} synced notes, cold`, pullRows, medians.reopen, 1.3),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const text = rows.map((row) => row.map((cell, i) => (i === 0 || i >= 6 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ").trimEnd());
  text.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  text.push("", `Server alone (Node client, pushes of 1000, SQLite): ${rate(results.server.rows, results.server.ms)} rows/s.`);
  const wire = results.pull.wire;
  if (wire?.pages > 0) {
    const mb = (bytes) => (bytes / 2 ** 20).toFixed(1);
    text.push(
      `The pull's ${wire.pages} page${wire.pages === 1 ? "" : "s"}: ${mb(wire.decoded)} MB of JSON, ${mb(wire.encoded)} MB as they travelled ` +
        `(${(wire.decoded / wire.encoded).toFixed(1)}× smaller: the reference server compresses its answers).`,
    );
  }
  if (medians.foldMs !== undefined) {
    text.push(
      `The push's acknowledgements were folded into the records in the background ${medians.foldMs.toFixed(0)} ms after it returned ` +
        `(the fold waits a second after the last batch logged, then takes one record of the log, up to 250 acknowledgements, per transaction).`,
    );
  }
  if (medians.otherTabMs !== undefined) {
    text.push(`With another tab open, that tab showed every pushed note synced ${medians.otherTabMs.toFixed(0)} ms after the push returned.`);
  }
  if (results.pull.wasmBytes !== undefined) {
    text.push(
      `The page that pulled ${pullRows.toLocaleString("en-US")} notes holds +${perEntity(results.pull.wasmBytes, pullRows)} B of wasm memory per note ` +
        `(${(results.pull.wasmBytes / 2 ** 20).toFixed(0)} MB; the last repetition's).`,
    );
  }
  for (const { count, heapBytes, wasmBytes, wasmTotal } of results.memory ?? []) {
    text.push(
      `Memory with ${count.toLocaleString("en-US")} notes open and queried: JS heap +${perEntity(heapBytes, count)} B and wasm memory ` +
        `+${perEntity(wasmBytes, count)} B per note (wasm memory ${(wasmTotal / 2 ** 20).toFixed(0)} MB in all).`,
    );
  }
  for (const { count, perCall, wasmBytes, wasmTotal } of results.bulkMemory ?? []) {
    const calls = perCall >= count ? "one bulkPut" : `bulkPuts of ${perCall.toLocaleString("en-US")}`;
    text.push(
      `Wasm memory ${count.toLocaleString("en-US")} notes written in ${calls} took: +${perEntity(wasmBytes, count)} B per note ` +
        `(${(wasmTotal / 2 ** 20).toFixed(0)} MB in all; memory only grows, so this is what the writes held at once).`,
    );
  }
  return text.join("\n");
}

function line(label, rows, { raw, tideway }, target) {
  const ratio = tideway / raw;
  return [label, raw.toFixed(0), tideway.toFixed(0), rate(rows, raw), rate(rows, tideway), `${ratio.toFixed(2)}×`, `≤ ${target}× raw`, ratio <= target ? "yes" : "NO"];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { reps: { type: "string", default: "5" }, push: { type: "string", default: "10000" }, pull: { type: "string", default: "100000" } },
  });
  const figures = await runSyncBench({
    reps: Number(values.reps),
    pushRows: Number(values.push),
    pullRows: Number(values.pull),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(syncTable(figures));
  for (const problem of figures.problems) console.log(`WARNING: ${problem}`);
}
