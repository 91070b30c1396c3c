#!/usr/bin/env node
// Sync over a slow network, in a fresh browser context whose network Chromium throttles
// (DevTools' network emulation), against the reference server as it runs by default
// (compression both ways) and with --no-compression, the two taking turns:
//
// - an initial sync: `Tideway.open` of a new database and the `db.sync()` that pulls
//   every note;
// - a push: the `db.sync()` that pushes notes written offline (one bulkPut, not timed).
//
// Not part of `npm run bench`:
//
//   node bench/network.mjs [--reps 3] [--pull 20000] [--push 5000] [--down 20] [--up 5] [--latency 40]
//
// --down and --up are the link's speeds in Mbit/s, --latency the time in ms added to
// each request's round trip; --pull 0 or --push 0 leaves that workload out. Reported,
// never asserted.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../tests/e2e/helpers.mjs";
import { startReferenceServer } from "../tests/sync/reference-server.mjs";
import { median } from "./stats.mjs";
import { benchSite, buildReleaseServer, rate, seed } from "./sync.mjs";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    pull: { type: "string", default: "20000" },
    push: { type: "string", default: "5000" },
    down: { type: "string", default: "20" },
    up: { type: "string", default: "5" },
    latency: { type: "string", default: "40" },
  },
});
const [reps, rows, pushRows, down, up, latency] = ["reps", "pull", "push", "down", "up", "latency"].map((name) => Number(values[name]));
const log = (line) => process.stderr.write(`${line}\n`);

const bin = buildReleaseServer(log);
const dir = mkdtempSync(join(tmpdir(), "tideway-network-bench-"));
const site = benchSite(dir);
// A user of its own for each push, so that every push starts from an empty account.
const pushTokens = Array.from({ length: reps + 1 }, (_, rep) => `push-${rep}`);
const start = (name, flags) => {
  mkdirSync(join(dir, name));
  const tokens = ["seed", ...pushTokens].map((token) => `${token}:${token}`);
  return startReferenceServer({ dir: join(dir, name), staticDir: site, tokens, bin, flags });
};
const sides = { compressed: await start("compressed", []), plain: await start("plain", ["--no-compression"]) };
const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
try {
  if (rows > 0) for (const server of Object.values(sides)) await seed(server.url, "seed", rows);
  const pulls = { compressed: [], plain: [] };
  const pushes = { compressed: [], plain: [] };
  // Rep 0 is a warm-up, thrown away.
  for (let rep = 0; rep <= reps; rep++) {
    for (const side of rep % 2 ? ["plain", "compressed"] : ["compressed", "plain"]) {
      const label = `${rep ? `rep ${rep}/${reps}` : "warm-up"} ${side.padEnd(10)}`;
      if (rows > 0) {
        const pulled = await throttled(sides[side], (token) => window.bench.pullTideway(token), "seed");
        if (pulled.rows !== rows) throw new Error(`${side}: ${pulled.rows} notes pulled, expected ${rows}`);
        if (rep > 0) pulls[side].push(pulled);
        log(`${label} pull ${pulled.ms.toFixed(0)} ms, ${(pulled.wire.encoded / 2 ** 20).toFixed(1)} MB on the wire`);
      }
      if (pushRows > 0) {
        const pushed = await throttled(sides[side], ([token, count]) => window.bench.pushTideway(token, count), [pushTokens[rep], pushRows]);
        if (pushed.rows !== pushRows) throw new Error(`${side}: ${pushed.rows} notes pushed, expected ${pushRows}`);
        if (rep > 0) pushes[side].push(pushed);
        log(`${label} push ${pushed.ms.toFixed(0)} ms`);
      }
    }
  }
  const link = `over ${down} Mbit/s down, ${up} up, ${latency} ms of latency (medians of ${reps})`;
  const sideName = (side) => (side === "compressed" ? "compression on (the default)" : "--no-compression");
  if (rows > 0) {
    console.log(`Initial sync of ${rows.toLocaleString("en-US")} notes ${link}:`);
    for (const [side, runs] of Object.entries(pulls)) {
      const ms = median(runs.map((run) => run.ms));
      const wire = runs[0].wire;
      console.log(
        `  ${sideName(side)}: ${(ms / 1000).toFixed(2)} s, ${rate(rows, ms)} rows/s, ` +
          `${(wire.encoded / 2 ** 20).toFixed(1)} MB on the wire for ${(wire.decoded / 2 ** 20).toFixed(1)} MB of JSON`,
      );
    }
  }
  if (pushRows > 0) {
    console.log(`Push of ${pushRows.toLocaleString("en-US")} notes written offline ${link}:`);
    for (const [side, runs] of Object.entries(pushes)) {
      const ms = median(runs.map((run) => run.ms));
      console.log(`  ${sideName(side)}: ${(ms / 1000).toFixed(2)} s, ${rate(pushRows, ms)} rows/s`);
    }
  }
} finally {
  await browser.close();
  for (const server of Object.values(sides)) await server.close();
  rmSync(dir, { recursive: true, force: true });
}

/** Runs `workload(arg)` in the bench page of `server`, in a fresh context on the throttled link. */
async function throttled(server, workload, arg) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency,
      downloadThroughput: (down * 1e6) / 8,
      uploadThroughput: (up * 1e6) / 8,
    });
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    return await page.evaluate(workload, arg);
  } finally {
    await context.close();
  }
}
