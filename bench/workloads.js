// One repetition of every workload for one engine, timed in the page. Timings come back
// to bench/run.mjs, which takes medians over repetitions and prints the table.

import { ENGINES } from "./engines.js";
import { NOTE_COUNT, SINGLE_WRITES, makeNotes, rangeWindows, sampleIds } from "./dataset.js";

export const GETS = 1000;
export const REPEATED_PASSES = 5;
export const RANGE_QUERIES = 50;
export const RANGE_SIZE = 100;
/** How long `quiet` waits before a timed write or open. */
const QUIET_MS = 100;

const now = () => performance.now();

export function environment() {
  return {
    userAgent: navigator.userAgent,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    timerResolutionMs: timerResolution(),
  };
}

function timerResolution() {
  let smallest = Infinity;
  for (let i = 0; i < 200; i++) {
    const a = performance.now();
    let b = performance.now();
    while (b === a) b = performance.now();
    smallest = Math.min(smallest, b - a);
  }
  return smallest;
}

/**
 * Runs every workload once on a fresh database. Results in ms, or µs where the key says so.
 * `checks` carries counts the caller verifies (a fast wrong answer is no result).
 */
export async function runRep(engineKey, rep) {
  const Engine = ENGINES[engineKey];
  const name = `tideway-bench-${engineKey}-${rep}`;
  const engine = new Engine();
  const notes = makeNotes(NOTE_COUNT, { seed: 1000 + rep });
  const singles = makeNotes(SINGLE_WRITES, { seed: 5000 + rep, first: NOTE_COUNT });
  const ids = sampleIds(notes.concat(singles), GETS, 9000 + rep);
  const windows = rangeWindows(RANGE_QUERIES, RANGE_SIZE, 7000 + rep);
  const result = { checks: {} };

  await engine.destroy(name);
  await engine.open(name);

  await quiet();
  let t = now();
  await engine.bulkWrite(notes);
  result.bulkWriteMs = now() - t;

  await quiet();
  t = now();
  for (const note of singles) await engine.writeOne(note);
  result.singleWriteMs = (now() - t) / SINGLE_WRITES;

  // Open and load: a new connection, every note brought into memory.
  await engine.close();
  await quiet();
  t = now();
  await engine.open(name);
  if (Engine.loadedByOpen) {
    result.openLoadMs = now() - t; // all() is timed last, so the gets below really are first
  } else {
    result.checks.loaded = await engine.loadAll();
    result.openLoadMs = now() - t;
  }

  // Gets by id, first after open (Tideway: the mirror's first answer for each id), then again.
  const sync = Engine.syncReads === true;
  let [ms, found] = await timeGets(engine, ids, 1, sync);
  result.getFirstUs = (ms * 1000) / GETS;
  [ms, found] = await timeGets(engine, ids, REPEATED_PASSES, sync);
  result.getRepeatedUs = (ms * 1000) / (GETS * REPEATED_PASSES);
  result.checks.found = found / REPEATED_PASSES;

  let matched = 0;
  t = now();
  if (sync) for (const [lo, hi] of windows) matched += engine.range(lo, hi);
  else for (const [lo, hi] of windows) matched += await engine.range(lo, hi);
  result.rangeQueryUs = ((now() - t) * 1000) / RANGE_QUERIES;
  result.checks.rangeAverage = matched / RANGE_QUERIES;

  if (Engine.loadedByOpen) {
    t = now();
    result.checks.loaded = await engine.loadAll();
    result.materialiseAllMs = now() - t;
  }

  await engine.close();
  await engine.destroy(name);
  return result;
}

/**
 * Lets what came before settle, so that it is not timed with what comes next:
 * collects the garbage (when the page may: run.mjs starts Chromium with
 * --expose-gc) and leaves the browser a moment for the work it does after a
 * transaction or a deletion has been reported.
 */
async function quiet() {
  globalThis.gc?.();
  await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
}

/**
 * Times `passes` rounds of gets of `ids`. Synchronous reads run in a plain loop: awaiting
 * even a plain value costs a microtask turn, which would dwarf what is being measured.
 */
async function timeGets(engine, ids, passes, sync) {
  let found = 0;
  const t = now();
  if (sync) {
    for (let pass = 0; pass < passes; pass++) for (const id of ids) if (engine.get(id)) found++;
  } else {
    for (let pass = 0; pass < passes; pass++) for (const id of ids) if (await engine.get(id)) found++;
  }
  return [now() - t, found];
}
