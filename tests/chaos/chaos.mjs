// The seeded chaos run: several devices (browser contexts, each with its own IndexedDB
// and two tabs on one database; the first also with the service worker, which its tabs
// ask to sync) make random puts, patches and deletes over a few hundred entities and
// reload their tabs, while a proxy in front of the real reference server drops
// requests, drops answers after the server applied them, delays, answers 500/503/429,
// an HTML error page or a truncated body, and the server process is killed and
// restarted on the same SQLite file. Then the network heals, everyone syncs,
// and the run checks what an offline-first store promises:
//
// - every tab of every device holds exactly what the server holds, nothing pending;
// - the server applied each change once: every version of every entity was made by
//   exactly one recorded mutation (`tideway-server push-log`), no write's content was
//   applied twice, and no mutation id was reused for other content;
// - no outbox entry was lost: every acknowledged write reached the server, or sat on
//   an entity another device changed too, where the conflict policy may replace it.
//
// The seed fixes the operations, the faults and the restarts; the browser's timing
// still varies, so a replay reproduces the storm, not every interleaving.

import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCountingProxy } from "../sync/counting-proxy.mjs";
import { READY_LIMIT_MS, launchBrowser } from "../sync/helpers.mjs";
import { REPO_ROOT, SERVER_BIN, startReferenceServer } from "../sync/reference-server.mjs";

const PKG = process.env.TIDEWAY_PKG_DIR ?? join(REPO_ROOT, "pkg");
const USER = "chaos";
const TOKEN = "chaos-token-for-the-storm";

// The service worker of the first device, as an app writes it with the package's entry
// point: it opens the same database and syncs when a tab posts it `tideway-sync`.
const SERVICE_WORKER = `
import { syncInServiceWorker } from "/pkg/service-worker.js";
const params = new URL(location.href).searchParams;
syncInServiceWorker({
  open: { name: params.get("name"), collections: { notes: {} }, sync: { url: location.origin, getToken: () => params.get("token") } },
});
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
`;

const HARNESS = `<!doctype html><meta charset="utf-8"><title>Tideway chaos harness</title>
<script type="module">
  import init, { Tideway } from "/pkg/tideway.js";
  await init();
  window.Tideway = Tideway;
  // What IndexedDB itself stores of some notes, for the report of a tab whose memory disagrees.
  window.storedMeta = (name, ids) =>
    new Promise((resolve, reject) => {
      const open = indexedDB.open(name);
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const store = open.result.transaction("e:notes").objectStore("e:notes");
        const found = ids.map((id) => store.get(id));
        store.transaction.oncomplete = () => {
          open.result.close();
          resolve(found.map((request) => {
            const doc = request.result?.doc;
            if (doc === undefined) return "nothing";
            const { version, syncStatus, deleted, pending } = JSON.parse(doc);
            return JSON.stringify({ version, syncStatus, deleted, pending });
          }));
        };
      };
    });
  document.documentElement.dataset.ready = "true";
</script>`;

/** A small seeded generator (mulberry32): the same seed gives the same numbers. */
export function seededRandom(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    between: (low, high) => low + Math.floor(next() * (high - low + 1)),
    chance: (p) => next() < p,
    /** One of `weights`' keys, each as likely as its weight. */
    weighted(weights) {
      let roll = next() * Object.values(weights).reduce((a, b) => a + b, 0);
      for (const [key, weight] of Object.entries(weights)) if ((roll -= weight) < 0) return key;
      return Object.keys(weights).at(-1);
    },
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** How long one write, open or sync in a page may take before the run calls it stuck. */
const STUCK_MS = 30_000;

class Stuck extends Error {}

/** `promise`, or a `Stuck` rejection naming `what` if it has not settled within `ms`. */
function within(ms, what, promise) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Stuck(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** What a stuck page's database says of itself, for the problem that reports it. */
async function statusOf(tab) {
  const status = await within(5_000, "status()", tab.page.evaluate(() => db.status())).catch((error) => `unknown (${error.message})`);
  return typeof status === "string" ? status : JSON.stringify(status);
}

/** How each kind of fault is weighted among the faulty exchanges. */
const FAULT_WEIGHTS = { dropRequest: 3, dropResponse: 3, delay: 3, status: 3, html: 1, truncate: 1 };

/**
 * Runs one storm and its checks. Resolves with the report (figures and `problems`, empty
 * when every check held); `log` receives progress lines.
 */
export async function runChaos({
  seed,
  durationMs,
  devices = 3,
  tabs = 2,
  entities = 200,
  faultRate = 0.3,
  healLimitMs = 120_000,
  log = () => {},
}) {
  if (!existsSync(join(PKG, "tideway.js"))) throw new Error(`${join(PKG, "tideway.js")} is missing: build the package first (bash scripts/build.sh)`);
  const report = {
    seed,
    durationMs,
    devices,
    tabs,
    entities,
    operations: { put: 0, patch: 0, delete: 0, sync: 0, reload: 0, workerSync: 0 },
    writes: { acknowledged: 0, refusedNotFound: 0, cutByReload: 0 },
    faults: Object.fromEntries(Object.keys(FAULT_WEIGHTS).map((kind) => [kind, 0])),
    serverRestarts: 0,
    pushRequests: 0,
    pushRecords: { applied: 0, conflict: 0, rejected: 0 },
    resentMutations: 0,
    retried: 0,
    merged: 0,
    unpushedOnContestedEntities: 0,
    healRounds: 0,
    problems: [],
  };
  const problem = (text) => {
    if (report.problems.length < 50) report.problems.push(text);
  };

  const dir = mkdtempSync(join(tmpdir(), "tideway-chaos-"));
  const site = join(dir, "site");
  cpSync(PKG, join(site, "pkg"), { recursive: true });
  writeFileSync(join(site, "index.html"), HARNESS);
  writeFileSync(join(site, "chaos-sw.js"), SERVICE_WORKER);
  const server = await startReferenceServer({ dir, staticDir: site, tokens: [`${TOKEN}:${USER}`] });
  const listen = new URL(server.url).host;
  const proxy = await startCountingProxy(server.url);
  const browser = await launchBrowser();
  try {
    // Every push the server answered, by `clientId/mutationId`: what it carried.
    const pushed = new Map();
    // Each client's pushes the server answered, in order, as the mutation ids
    // each carried (`first-last`), to show around a refusal.
    const pushOrder = new Map();
    proxy.observe = ({ path, requestBody, status }) => {
      if (path !== "/v1/push" || status !== 200) return;
      report.pushRequests += 1;
      const body = JSON.parse(requestBody);
      const ids = body.mutations.map((m) => m.mutationId);
      if (ids.length > 0) {
        const order = pushOrder.get(body.clientId) ?? [];
        order.push(ids.length === 1 ? `${ids[0]}` : `${ids[0]}-${ids[ids.length - 1]}`);
        pushOrder.set(body.clientId, order);
      }
      for (const m of body.mutations) {
        const key = `${body.clientId}/${m.mutationId}`;
        const content = contentOf(m);
        const seen = pushed.get(key);
        if (seen === undefined) pushed.set(key, content);
        else {
          report.resentMutations += 1;
          if (seen !== content) problem(`mutation ${key} was sent with two contents: ${seen} and ${content}`);
        }
      }
    };
    const faults = seededRandom(seed ^ 0x5eed);
    proxy.fault = () => {
      if (!faults.chance(faultRate)) return null;
      const kind = faults.weighted(FAULT_WEIGHTS);
      report.faults[kind] += 1;
      if (kind === "delay") return { kind, ms: faults.between(50, 2000) };
      if (kind === "status") {
        const status = [500, 503, 429][faults.int(3)];
        return { kind, status, retryAfterSeconds: status === 500 ? undefined : 1 };
      }
      return { kind };
    };

    const fleet = [];
    for (let d = 0; d < devices; d++) {
      const device = { index: d, name: `chaos-${seed}-${d}`, context: await browser.newContext(), tabs: [], clientId: null, retired: { retried: 0, merged: 0 } };
      for (let t = 0; t < tabs; t++) device.tabs.push(await openTab(device, proxy.url));
      device.clientId = await device.tabs[0].page.evaluate(() => db.clientId);
      if (d === 0) await addServiceWorker(device, proxy.url);
      fleet.push(device);
    }
    log(`seed ${seed}: ${devices} devices × ${tabs} tabs (the first with a service worker), ${entities} entities, ${durationMs} ms of chaos`);

    const writes = [];
    const end = Date.now() + durationMs;
    const storm = fleet.map((device) => deviceStorm(device, seededRandom(seed * 31 + device.index + 1), { end, entities, writes, report, url: proxy.url, problem }));
    storm.push(serverStorm(server, listen, seededRandom(seed * 17 + 7), end, report, log));
    await Promise.all(storm);

    log(`healing: ${writes.length} writes, ${report.serverRestarts} restarts, faults ${JSON.stringify(report.faults)}`);
    proxy.fault = null;
    await heal(fleet, server, report, healLimitMs, problem);
    await checkClientsEqualServer(fleet, server, problem);
    for (const device of fleet) {
      for (const tab of device.tabs) {
        const counters = await tab.page.evaluate(() => db.status().counters);
        report.retried += counters.retried;
        report.merged += counters.merged;
        for (const error of tab.errors) problem(`device ${device.index}: an error reached the page: ${error}`);
      }
      report.retried += device.retired.retried;
      report.merged += device.retired.merged;
    }
    await audit({ server, pushed, pushOrder, writes, fleet, report, problem });
  } finally {
    await browser.close();
    await proxy.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

/** What a pushed mutation carries, as one comparable string (keys sorted at every depth). */
function contentOf(m) {
  return canonical({ op: m.op, id: m.id, data: m.op === "delete" ? null : m.data });
}

function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A tab of `device` on the harness page, with its database open; retried while the server is down. */
async function openTab(device, url, existing) {
  const page = existing?.page ?? (await device.context.newPage());
  const tab = existing ?? { page, errors: [] };
  if (!existing) page.on("pageerror", (error) => tab.errors.push(error.message));
  for (let attempt = 1; ; attempt++) {
    const errorsBefore = tab.errors.length;
    try {
      if (existing || attempt > 1) await page.reload({ timeout: READY_LIMIT_MS });
      else await page.goto(url, { timeout: READY_LIMIT_MS });
      await page.waitForSelector('html[data-ready="true"]', { timeout: 5_000 });
      break;
    } catch (error) {
      // The page and the package load through the proxy from the server: while it
      // restarts they answer 502, and the page says it could not load. Load it again.
      tab.errors.length = errorsBefore;
      if (attempt >= 20) throw error;
      await sleep(250);
    }
  }
  const opened = page.evaluate(
    async ({ name, token }) => {
      window.db = await Tideway.open({
        name,
        collections: { notes: {} },
        sync: { url: location.origin, getToken: () => token, interval: 1000, debounce: 50 },
      });
      window.notes = db.collection("notes");
    },
    { name: device.name, token: TOKEN },
  );
  await within(STUCK_MS, `device ${device.index}: Tideway.open`, opened);
  return tab;
}

/** Registers the service worker on `device`'s database, and reloads its tabs under its control. */
async function addServiceWorker(device, url) {
  await device.tabs[0].page.evaluate(
    async ({ name, token }) => {
      await navigator.serviceWorker.register(`/chaos-sw.js?name=${name}&token=${token}`, { type: "module" });
      await navigator.serviceWorker.ready;
    },
    { name: device.name, token: TOKEN },
  );
  for (const tab of device.tabs) {
    await openTab(device, url, tab);
    await tab.page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: READY_LIMIT_MS });
  }
  device.serviceWorker = true;
}

/** One device's part of the storm: random writes on random tabs, syncs and reloads until `end`. */
async function deviceStorm(device, random, { end, entities, writes, report, url, problem }) {
  let sequence = 0;
  while (Date.now() < end) {
    await sleep(random.between(10, 120));
    const tab = device.tabs[random.int(device.tabs.length)];
    const action = random.weighted({ put: 45, patch: 30, delete: 15, sync: 6, reload: 2, workerSync: device.serviceWorker ? 8 : 0 });
    report.operations[action] += 1;
    if (action === "reload") {
      // Counters are per page: keep what this one counted.
      const counters = await tab.page.evaluate(() => db.status().counters).catch(() => null);
      device.retired.retried += counters?.retried ?? 0;
      device.retired.merged += counters?.merged ?? 0;
      await openTab(device, url, tab);
      continue;
    }
    if (action === "workerSync") {
      // Answered by the worker with a message nobody waits for: a failed sync is its own business.
      await tab.page.evaluate((name) => navigator.serviceWorker.controller?.postMessage({ type: "tideway-sync", name }), device.name);
      continue;
    }
    if (action === "sync") {
      await tab.page.evaluate(() => void db.sync().catch(() => {}));
      continue;
    }
    const token = `d${device.index}-${++sequence}`;
    const id = `e${random.int(entities)}`;
    const data =
      action === "put"
        ? { title: `note ${token}`, n: random.int(1000), w: token }
        : action === "patch"
          ? { w: token, [`k${random.int(4)}`]: random.int(1000) }
          : null;
    const write = { device: device.index, op: action, id, data, token, outcome: null };
    writes.push(write);
    const outcome = await within(
      STUCK_MS,
      `device ${device.index}: ${action} ${id} (${token})`,
      tab.page.evaluate(
        async ({ op, id, data }) => {
          try {
            if (op === "put") await notes.put(data, { id });
            else if (op === "patch") await notes.patch(id, data);
            else await notes.delete(id);
            return { ok: true };
          } catch (error) {
            return { ok: false, code: error.code, message: error.message };
          }
        },
        { op: action, id, data },
      ),
    ).catch(async (error) => {
      if (error instanceof Stuck) problem(`${error.message}; status: ${await statusOf(tab)}`);
      return { ok: false, code: "CUT" };
    });
    if (outcome.ok) {
      write.outcome = "acknowledged";
      report.writes.acknowledged += 1;
    } else if (outcome.code === "NOT_FOUND" && action !== "put") {
      write.outcome = "refused";
      report.writes.refusedNotFound += 1;
    } else if (outcome.code === "CUT") {
      write.outcome = "unknown";
      report.writes.cutByReload += 1;
    } else {
      write.outcome = "refused";
      problem(`device ${device.index}: ${action} ${id} was refused: ${outcome.code}: ${outcome.message}`);
    }
  }
}

/** The server's part of the storm: killed (SIGKILL) and started again on the same file and port. */
async function serverStorm(server, listen, random, end, report, log) {
  for (;;) {
    const wait = random.between(4000, 12000);
    if (Date.now() + wait >= end) return;
    await sleep(wait);
    await server.stop();
    await sleep(random.between(200, 1500));
    await server.start(listen);
    report.serverRestarts += 1;
    log(`server restarted (${report.serverRestarts})`);
  }
}

/** Syncs every tab until nothing is pending anywhere and a last round changed nothing. */
async function heal(fleet, server, report, limitMs, problem) {
  const end = Date.now() + limitMs;
  let quiet = 0;
  while (quiet < 2) {
    if (Date.now() > end) return problem(`the fleet did not settle within ${limitMs} ms of healing`);
    report.healRounds += 1;
    let pending = 0;
    for (const device of fleet) {
      for (const [t, tab] of device.tabs.entries()) {
        try {
          await within(STUCK_MS, `device ${device.index} tab ${t}: sync()`, tab.page.evaluate(() => db.sync().catch(() => {})));
        } catch (error) {
          return problem(`${error.message} while healing; status: ${await statusOf(tab)}`);
        }
        pending += await tab.page.evaluate(() => db.pendingCount());
      }
    }
    quiet = pending === 0 ? quiet + 1 : 0;
  }
}

/** Live entities as `{ id: data }`, sorted by id. */
const byId = (entries) => Object.fromEntries(entries.sort((a, b) => (a.id < b.id ? -1 : 1)).map((e) => [e.id, e.data]));

async function checkClientsEqualServer(fleet, server, problem) {
  const serverEntities = await server.pullAll(TOKEN);
  const expected = byId(serverEntities.filter((e) => !e.deleted));
  const versions = new Map(serverEntities.map((e) => [e.id, e.version]));
  for (const device of fleet) {
    for (const [t, tab] of device.tabs.entries()) {
      const { held, status } = await tab.page.evaluate(() => ({
        held: notes.all().map((r) => ({ id: r.id, data: r.data, version: r.meta.version })),
        status: db.status(),
      }));
      const heldById = new Map(held.map((r) => [r.id, r]));
      const differing = [...new Set([...Object.keys(expected), ...heldById.keys()])]
        .filter((id) => JSON.stringify(heldById.get(id)?.data) !== JSON.stringify(expected[id]))
        .sort();
      if (differing.length > 0) {
        const shown = differing.slice(0, 5).map((id) => `${id} (held at version ${heldById.get(id)?.version ?? "none"}, the server's ${versions.get(id) ?? "none"})`);
        problem(`device ${device.index} tab ${t} does not hold what the server holds: ${differing.length} entities differ, ${shown.join(", ")}`);
      }
      for (const field of ["pending", "failed", "conflicts"]) {
        if (status[field] !== 0) problem(`device ${device.index} tab ${t}: status().${field} is ${status[field]}`);
      }
      if (status.pending + status.failed + status.conflicts > 0) {
        // Which entities this tab's memory holds as unsynced, beside the server's versions.
        const unsynced = (await tab.page.evaluate(() => db.unsynced())).slice(0, 5);
        const stored = await tab.page.evaluate(({ name, ids }) => storedMeta(name, ids), { name: device.name, ids: unsynced.map((e) => e.id) });
        const elsewhere = await Promise.all(device.tabs.map((other) => other.page.evaluate((ids) => ids.map((id) => notes.get(id, { includeDeleted: true })?.meta.syncStatus), unsynced.map((e) => e.id))));
        const shown = unsynced.map((e, i) => `${e.id} ${e.syncStatus}${e.deleted ? " deleted" : ""} at version ${e.version} (the server's ${versions.get(e.id) ?? "none"}; stored ${stored[i]}; each tab holds it ${elsewhere.map((held) => held[i]).join("/")})`);
        problem(`device ${device.index} tab ${t} holds as unsynced: ${shown.join(", ")}; the database's outbox holds ${await tab.page.evaluate(() => db.pendingCount())}`);
      }
    }
  }
}

/** The server-side audit: the push records joined with what the proxy saw pushed. */
async function audit({ server, pushed, pushOrder, writes, fleet, report, problem }) {
  const lines = await new Promise((resolve, reject) =>
    execFile(SERVER_BIN, ["push-log", "--db", `sqlite://${join(server.dir, "server.db")}`], { maxBuffer: 256 << 20 }, (error, stdout, stderr) =>
      error ? reject(new Error(`push-log failed: ${stderr}`)) : resolve(stdout.split("\n").filter(Boolean)),
    ),
  );
  const records = lines.map((line) => JSON.parse(line)).filter((r) => r.user === USER);
  const versionsMade = new Map(); // entity id -> versions its applied records made
  const appliedContents = new Map(); // content -> how many applied records carried it
  const answered = new Map(); // clientId -> Set of contents with a record, and ids that met a conflict
  const writers = new Map(); // entity id -> clientIds whose changes to it were applied
  for (const record of records) {
    const key = `${record.clientId}/${record.mutationId}`;
    const status = record.result.status;
    report.pushRecords[status] = (report.pushRecords[status] ?? 0) + 1;
    const content = pushed.get(key);
    if (content === undefined) {
      problem(`the server recorded ${key}, which the proxy never saw answered`);
      continue;
    }
    const { id } = JSON.parse(content); // canonical JSON parses back
    const mine = answered.get(record.clientId) ?? { contents: new Set(), conflicts: new Set() };
    answered.set(record.clientId, mine);
    mine.contents.add(content);
    if (status === "conflict") mine.conflicts.add(id);
    if (status === "rejected") {
      const order = (pushOrder.get(record.clientId) ?? []).join(", ");
      problem(`the server rejected ${key}: ${JSON.stringify(record.result.error)}; that client's pushes as the server answered them: ${order}`);
    }
    if (status !== "applied") continue;
    writers.set(id, (writers.get(id) ?? new Set()).add(record.clientId));
    const versions = versionsMade.get(id) ?? [];
    versions.push(record.result.version);
    versionsMade.set(id, versions);
    appliedContents.set(content, (appliedContents.get(content) ?? 0) + 1);
  }

  // Every version of every entity made once, by a recorded mutation.
  for (const entity of await server.pullAll(TOKEN)) {
    const versions = (versionsMade.get(entity.id) ?? []).sort((a, b) => a - b);
    const expected = Array.from({ length: entity.version }, (_, i) => i + 1);
    if (JSON.stringify(versions) !== JSON.stringify(expected)) {
      problem(`${entity.id} is at version ${entity.version}, but its applied records made versions ${versions.join(",")}`);
    }
    versionsMade.delete(entity.id);
  }
  for (const id of versionsMade.keys()) problem(`records applied changes to ${id}, which the server does not hold`);

  // No write's content applied twice (deletes carry no content of their own to tell apart).
  for (const write of writes) {
    if (write.op === "delete") continue;
    const count = appliedContents.get(contentOf(write)) ?? 0;
    if (count > 1) problem(`${write.op} ${write.id} by device ${write.device} (${write.token}) was applied ${count} times`);
  }

  // No outbox entry lost. A write may be replaced before it is pushed only by the
  // conflict policy, when a pull brings another device's change to an entity with
  // queued writes: so an entity no other device changed must have every write pushed.
  for (const write of writes) {
    if (write.outcome !== "acknowledged") continue;
    const clientId = fleet[write.device].clientId;
    const mine = answered.get(clientId);
    if (mine?.contents.has(contentOf(write)) || mine?.conflicts.has(write.id)) continue;
    if ([...(writers.get(write.id) ?? [])].some((other) => other !== clientId)) {
      report.unpushedOnContestedEntities += 1;
      continue;
    }
    problem(`${write.op} ${write.id} by device ${write.device} (${write.token}) was acknowledged but never reached the server`);
  }
}
