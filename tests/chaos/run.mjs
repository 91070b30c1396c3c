// The chaos run from the command line, for as long and with as many devices as wanted:
//
//   node tests/chaos/run.mjs [--seed N] [--minutes M] [--devices D] [--tabs T] [--entities E] [--fault-rate F]
//
// Needs the package (bash scripts/build.sh) and the server (cargo build -p tideway-server).
// Prints the figures and every broken promise; exits 1 if there was one. A failing seed
// replays the same operations, faults and restarts (see chaos.mjs).

import { parseArgs } from "node:util";
import { runChaos } from "./chaos.mjs";

const { values } = parseArgs({
  options: {
    seed: { type: "string", default: String(Math.floor(Math.random() * 2 ** 31)) },
    minutes: { type: "string", default: "1" },
    devices: { type: "string", default: "3" },
    tabs: { type: "string", default: "2" },
    entities: { type: "string", default: "300" },
    "fault-rate": { type: "string", default: "0.3" },
  },
});
const report = await runChaos({
  seed: Number(values.seed),
  durationMs: Number(values.minutes) * 60_000,
  devices: Number(values.devices),
  tabs: Number(values.tabs),
  entities: Number(values.entities),
  faultRate: Number(values["fault-rate"]),
  log: (line) => console.log(line),
});
const { problems, ...figures } = report;
console.log(JSON.stringify(figures, null, 2));
for (const line of problems) console.log(`PROBLEM: ${line}`);
console.log(problems.length ? `seed ${report.seed}: ${problems.length} problems` : `seed ${report.seed}: every check held`);
process.exit(problems.length ? 1 : 0);
