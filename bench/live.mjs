#!/usr/bin/env node
// What live queries cost a write: 10 000 notes, 100 watches of 10 notes each over an
// index, in headless Chromium. For one write that affects no watched result and one
// that changes one, it times the work the watches add to the commit: the span between
// a subscriber registered before the watches and one registered after them (the
// repository calls its subscribers in order, the watches' feed in between).
//
//   bash scripts/build.sh && node bench/live.mjs [--writes 200]
//
// Figures are printed, never asserted.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { startStaticServer } from "./static-server.mjs";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../tests/e2e/helpers.mjs";

const { values: options } = parseArgs({ options: { writes: { type: "string", default: "200" } } });
const WRITES = Math.max(10, Number.parseInt(options.writes, 10) || 200);

const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
import { Tideway } from "/pkg/index.js";

const ENTITIES = 10_000, WATCHES = 100, SPAN = 10, STRIDE = ENTITIES / WATCHES;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const p95 = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.95)];

window.run = async (writes) => {
  const name = "bench-live-" + crypto.randomUUID();
  const db = await Tideway.open({ name, collections: { notes: { indexes: ["rank"] } } });
  const notes = db.collection("notes");
  await notes.bulkPut(Array.from({ length: ENTITIES }, (_, i) => ({ id: "n" + i, data: { title: "note " + i, rank: i } })));

  // Watch k shows ranks [k * STRIDE, k * STRIDE + SPAN): 10 notes each, 1000 in all.
  let before = 0, spans = [];
  const first = notes.subscribe(() => { before = performance.now(); });
  let calls = 0;
  const stops = [];
  for (let k = 0; k < WATCHES; k++) {
    stops.push(notes.watch({ index: "rank", gte: k * STRIDE, lt: k * STRIDE + SPAN }, () => calls++));
  }
  const last = notes.subscribe(() => spans.push(performance.now() - before));

  const measure = async (id) => {
    spans = [];
    calls = 0;
    for (let i = 0; i < writes; i++) await notes.patch(id, { title: "edit " + i });
    return { medianUs: median(spans) * 1000, p95Us: p95(spans) * 1000, callbacks: calls };
  };
  // n50 (rank 50) lies between two watched ranges; n3 (rank 3) is in the first one.
  const result = { none: await measure("n50"), one: await measure("n3") };
  stops.forEach((stop) => stop());
  result.unwatched = await measure("n3");
  first();
  last();
  await db.close();
  await Tideway.deleteDatabase(name);
  return result;
};
document.documentElement.dataset.ready = "true";
</script>`;

const site = mkdtempSync(join(tmpdir(), "tideway-bench-live-"));
writeFileSync(join(site, "index.html"), PAGE);
const pkg = fileURLToPath(new URL("../www/pkg/", import.meta.url));
const server = await startStaticServer({
  mounts: [["/pkg/", pkg], ["/", site]],
  // Cross-origin isolation gives performance.now() 5 µs steps instead of 100 µs.
  headers: { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" },
});
const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForFunction(() => document.documentElement.dataset.ready === "true");
  const result = await page.evaluate((writes) => window.run(writes), WRITES);
  const row = (label, { medianUs, p95Us, callbacks }) =>
    `${label.padEnd(58)} ${medianUs.toFixed(0).padStart(7)} µs ${p95Us.toFixed(0).padStart(7)} µs ${String(callbacks).padStart(9)}`;
  console.log(`live queries: 10 000 notes, 100 watches of 10 notes each, ${WRITES} patches per row`);
  console.log(`${"work the watches add to one committed patch".padEnd(58)} ${"median".padStart(10)} ${"p95".padStart(10)} ${"callbacks".padStart(9)}`);
  console.log(row("no watch (the subscribers alone)", result.unwatched));
  console.log(row("100 watches, the patch affects none of them", result.none));
  console.log(row("100 watches, the patch changes one result", result.one));
} finally {
  await browser.close();
  await server.close();
  rmSync(site, { recursive: true, force: true });
}
