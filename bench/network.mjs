#!/usr/bin/env node
// An initial sync over a slow network: `Tideway.open` of a new database and the
// `db.sync()` that pulls every note, in a fresh browser context whose network Chromium
// throttles (DevTools' network emulation), against the reference server as it runs by
// default (answers compressed) and with --no-compression, the two taking turns. Not
// part of `npm run bench`:
//
//   node bench/network.mjs [--reps 3] [--pull 20000] [--down 20] [--up 5] [--latency 40]
//
// --down and --up are the link's speeds in Mbit/s, --latency the time in ms added to
// each request's round trip. Reported, never asserted.

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
    down: { type: "string", default: "20" },
    up: { type: "string", default: "5" },
    latency: { type: "string", default: "40" },
  },
});
const [reps, rows, down, up, latency] = ["reps", "pull", "down", "up", "latency"].map((name) => Number(values[name]));
const log = (line) => process.stderr.write(`${line}\n`);

const bin = buildReleaseServer(log);
const dir = mkdtempSync(join(tmpdir(), "tideway-network-bench-"));
const site = benchSite(dir);
const start = (name, flags) => {
  mkdirSync(join(dir, name));
  return startReferenceServer({ dir: join(dir, name), staticDir: site, tokens: ["seed:seed"], bin, flags });
};
const sides = { compressed: await start("compressed", []), plain: await start("plain", ["--no-compression"]) };
const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
try {
  for (const server of Object.values(sides)) await seed(server.url, "seed", rows);
  const results = { compressed: [], plain: [] };
  // Rep 0 is a warm-up, thrown away.
  for (let rep = 0; rep <= reps; rep++) {
    for (const side of rep % 2 ? ["plain", "compressed"] : ["compressed", "plain"]) {
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
        await page.goto(sides[side].url);
        await page.waitForSelector('html[data-ready="true"]');
        const result = await page.evaluate((token) => window.bench.pullTideway(token), "seed");
        if (result.rows !== rows) throw new Error(`${side}: ${result.rows} notes pulled, expected ${rows}`);
        if (rep > 0) results[side].push(result);
        log(`${rep ? `rep ${rep}/${reps}` : "warm-up"} ${side.padEnd(10)} ${result.ms.toFixed(0)} ms, ${(result.wire.encoded / 2 ** 20).toFixed(1)} MB on the wire`);
      } finally {
        await context.close();
      }
    }
  }
  console.log(`Initial sync of ${rows.toLocaleString("en-US")} notes over ${down} Mbit/s down, ${up} up, ${latency} ms of latency (medians of ${reps}):`);
  for (const [side, runs] of Object.entries(results)) {
    const ms = median(runs.map((run) => run.ms));
    const wire = runs[0].wire;
    console.log(
      `  ${side === "compressed" ? "answers compressed (the default)" : "--no-compression"}: ${(ms / 1000).toFixed(2)} s, ` +
        `${rate(rows, ms)} rows/s, ${(wire.encoded / 2 ** 20).toFixed(1)} MB on the wire for ${(wire.decoded / 2 ** 20).toFixed(1)} MB of JSON`,
    );
  }
} finally {
  await browser.close();
  for (const server of Object.values(sides)) await server.close();
  rmSync(dir, { recursive: true, force: true });
}
