// The chaos run in its short form, as the test suite runs it: one minute of storm
// (TIDEWAY_CHAOS_MINUTES), on a fresh seed each run unless TIDEWAY_CHAOS_SEED gives
// one. The seed is printed; `node tests/chaos/run.mjs --seed N` replays a failure.

import assert from "node:assert/strict";
import { test } from "node:test";
import { runChaos } from "./chaos.mjs";

const seed = Number(process.env.TIDEWAY_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const minutes = Number(process.env.TIDEWAY_CHAOS_MINUTES ?? 1);

test(`chaos, seed ${seed}: every client equals the server, each write applied once, no outbox entry lost`, async (t) => {
  const report = await runChaos({ seed, durationMs: minutes * 60_000, healLimitMs: 60_000, log: (line) => t.diagnostic(line) });
  const { problems, ...figures } = report;
  t.diagnostic(JSON.stringify(figures));
  assert.ok(report.writes.acknowledged > 0 && report.serverRestarts > 0, "the storm wrote and restarted the server");
  assert.ok(Object.values(report.faults).every((count) => count > 0), `every kind of fault happened: ${JSON.stringify(report.faults)}`);
  assert.deepEqual(problems, [], `replay with: node tests/chaos/run.mjs --seed ${seed} --minutes ${minutes}`);
});
