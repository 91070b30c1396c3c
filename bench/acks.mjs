#!/usr/bin/env node
// What recording 10k acknowledgements of a push costs raw IndexedDB, by layout: each
// entity's record rewritten (as Tideway stored them before storage format 4), or one
// record of the acknowledgement log per batch (as it stores a large batch now). The
// floor under any push that records its answers in that layout, whatever runs around
// it (see bench/README.md, "Where the time goes").
//
//   node bench/acks.mjs [--reps 5] [--count 10000] [--batch 1000]
//
// Each run in a fresh browser context; the layouts take turns going first. Reported,
// never asserted.

import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../tests/e2e/helpers.mjs";
import { startStaticServer } from "./static-server.mjs";
import { median } from "./stats.mjs";

const { values } = parseArgs({
  options: { reps: { type: "string", default: "5" }, count: { type: "string", default: "10000" }, batch: { type: "string", default: "1000" } },
});
const [reps, count, batch] = [values.reps, values.count, values.batch].map(Number);
const layouts = ["rewrite", "log"];

const server = await startStaticServer({ mounts: [["/bench/", fileURLToPath(new URL(".", import.meta.url))]] });
const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
const samples = Object.fromEntries(layouts.map((layout) => [layout, { ms: [], putMs: [] }]));
try {
  for (let rep = 0; rep < reps; rep++) {
    for (const layout of rep % 2 === 0 ? layouts : [...layouts].reverse()) {
      const context = await browser.newContext();
      const page = await context.newPage();
      // Any page of the origin: the workload imports what it needs.
      await page.goto(`${server.url}/bench/cold.html`);
      const result = await page.evaluate(
        async ([layout, count, batch]) => (await import("/bench/acks.js")).record(layout, count, batch),
        [layout, count, batch],
      );
      await context.close();
      samples[layout].ms.push(result.ms);
      samples[layout].putMs.push(result.putMs);
      console.error(`rep ${rep + 1}/${reps} ${layout.padEnd(7)} ${result.ms.toFixed(0)} ms (put calls ${result.putMs.toFixed(0)} ms)`);
    }
  }
} finally {
  await browser.close();
  await server.close();
}

console.log(`Recording ${count.toLocaleString("en-US")} acknowledgements in batches of ${batch}, raw IndexedDB, medians of ${reps}:`);
for (const layout of layouts) {
  const { ms, putMs } = samples[layout];
  const what = layout === "rewrite" ? "each entity's record rewritten" : "log records, 250 to a record";
  console.log(
    `  ${what.padEnd(31)} ${median(ms).toFixed(0).padStart(6)} ms  (${((median(ms) * 1000) / count).toFixed(0)} µs an acknowledgement; put calls ${median(putMs).toFixed(0)} ms)`,
  );
}
