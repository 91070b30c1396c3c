// Several tabs and the service worker on one database, in Chromium against
// the real reference server: mirrors that agree, one syncer, Background Sync
// through the service-worker entry point of the npm package.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { build } from "esbuild";
import { READY_LIMIT_MS, eventually, openDb, serverAndBrowser, waitInPage } from "./helpers.mjs";

let server;
let browser;

// A module service worker as an app writes it, with the package's entry point.
const SERVICE_WORKER = `
import { syncInServiceWorker } from "/pkg/service-worker.js";
const params = new URL(location.href).searchParams;
// A slow uplink, where a test asks for one: each push waits this long before it goes.
const pushDelay = Number(params.get("pushDelay") ?? 0);
if (pushDelay > 0) {
  const send = self.fetch.bind(self);
  self.fetch = async (request, init) => {
    const url = new URL(request instanceof Request ? request.url : request, location.href);
    if (url.pathname === "/v1/push") await new Promise((resolve) => setTimeout(resolve, pushDelay));
    return send(request, init);
  };
}
syncInServiceWorker({
  open: {
    name: params.get("name"),
    collections: { notes: { indexes: ["title"] } },
    sync: { url: location.origin, getToken: () => params.get("user") + "-token", batchSize: Number(params.get("batch") ?? 1000) },
  },
});
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
`;

// A dedicated worker that opens the database and syncs it.
const WORKER = `
import init, { Tideway } from "/pkg/tideway.js";
await init();
const params = new URL(location.href).searchParams;
const db = await Tideway.open({
  name: params.get("name"),
  collections: { notes: { indexes: ["title"] } },
  sync: { url: location.origin, getToken: () => params.get("user") + "-token", interval: 0, debounce: 20 },
});
postMessage("opened");
`;

// A classic service worker, with the entry point bundled as docs/sync.md says.
const CLASSIC_SERVICE_WORKER = `
importScripts("/tideway-sw.js");
const params = new URL(location.href).searchParams;
TidewaySW.syncInServiceWorker({
  open: {
    name: params.get("name"),
    collections: { notes: { indexes: ["title"] } },
    sync: { url: location.origin, getToken: () => params.get("user") + "-token" },
  },
  moduleUrl: "/pkg/tideway_bg.wasm",
});
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
`;

serverAndBrowser(async (started) => {
  ({ server, browser } = started);
  const site = join(server.dir, "site");
  writeFileSync(join(site, "contexts-sw.js"), SERVICE_WORKER);
  writeFileSync(join(site, "contexts-worker.js"), WORKER);
  writeFileSync(join(site, "classic-sw.js"), CLASSIC_SERVICE_WORKER);
  // npx esbuild node_modules/tideway/service-worker.js --bundle --format=iife --global-name=TidewaySW --outfile=…
  await build({
    entryPoints: [join(site, "pkg", "service-worker.js")],
    bundle: true,
    format: "iife",
    globalName: "TidewaySW",
    outfile: join(site, "tideway-sw.js"),
    logLevel: "error",
  });
});

/** A tab on the harness page, in `context` (tabs of one context share IndexedDB). */
async function openTab(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(server.url, { timeout: READY_LIMIT_MS });
  await page.waitForSelector('html[data-ready="true"]', { timeout: READY_LIMIT_MS });
  return { page, errors };
}

/** Waits until `predicate` (run in the tab's page) holds; fails saying `what`. */
const waitIn = ({ page }, what, predicate, arg, timeout) => waitInPage(page, what, predicate, arg, timeout);

/** The notes the server holds for `user`, once there are `count` of them. */
async function serverNotes(user, count) {
  const live = async () => (await server.pullAll(user)).filter((change) => change.collection === "notes" && !change.deleted);
  return eventually(`the server to hold ${count} notes of ${user}`, async () => {
    const notes = await live();
    return notes.length >= count && notes;
  });
}

/** Checks that the server holds exactly `count` notes of `user`, each applied once (at version 1). */
async function assertPushedOnce(user, count) {
  const notes = await serverNotes(user, count);
  assert.equal(notes.length, count, "every write reached the server");
  assert.deepEqual(notes.filter((n) => n.version !== 1).map((n) => [n.id, n.version]), [], "each applied exactly once");
}

/**
 * Tab B writes `count` notes while tab A syncs; A's first push reaches the server,
 * which applies it, and its answer never comes back. Resolves once that push is on
 * the server.
 */
async function pushLeftInFlight(a, b, count) {
  let pushed;
  const pushReachedServer = new Promise((resolve) => (pushed = resolve));
  await a.page.route("**/v1/push", async (route) => {
    await route.fetch();
    pushed();
    await new Promise(() => {});
  });
  await b.page.evaluate(async (count) => {
    const writes = [];
    for (let i = 0; i < count; i++) writes.push(window.notes.put({ title: `note ${i}` }, { id: `n${i}` }));
    await Promise.all(writes);
  }, count);
  await pushReachedServer;
}

/** Two tabs of one context syncing one new database as `user`: A holds the sync lock, B knows it. */
async function twoTabsSyncing(kind, user) {
  const context = await browser.newContext();
  const [a, b] = [await openTab(context), await openTab(context)];
  const name = `${kind}-${crypto.randomUUID()}`;
  await openDb(a, name, user);
  await waitIn(a, "tab A to hold the sync lock", () => window.db.status().syncer?.here === true);
  await openDb(b, name, user);
  await waitIn(b, "tab B to hear that A syncs", () => window.db.status().syncer?.here === false);
  return { context, a, b, name };
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];

test("a write in one tab reaches another tab's get and subscription, and interleaved writes end equal", async () => {
  const context = await browser.newContext();
  const [a, b] = [await openTab(context), await openTab(context)];
  const name = `coherence-${crypto.randomUUID()}`;
  await openDb(a, name, null);
  await openDb(b, name, null);
  await b.page.evaluate(() => {
    window.arrivals = new Map();
    window.notes.subscribe((changes) => {
      const at = performance.timeOrigin + performance.now();
      for (const change of changes) {
        // The synchronous get already shows what the subscriber hears.
        const seen = window.notes.get(change.id)?.data.title === change.record?.data.title;
        window.arrivals.set(change.id, { at, origin: change.origin, seen });
      }
    });
  });

  const delays = [];
  for (let i = 0; i < 60; i++) {
    const id = `n${i}`;
    const resolvedAt = await a.page.evaluate(async (id) => {
      await window.notes.put({ title: `title ${id}` }, { id });
      return performance.timeOrigin + performance.now();
    }, id);
    await waitIn(b, `tab B to hear of ${id}`, (id) => window.arrivals.has(id), id, 5_000);
    const arrival = await b.page.evaluate((id) => window.arrivals.get(id), id);
    assert.equal(arrival.origin, "elsewhere");
    assert.ok(arrival.seen, `B's get shows ${id} when its subscriber hears of it`);
    delays.push(arrival.at - resolvedAt);
  }
  delays.sort((x, y) => x - y);
  console.log(
    `cross-tab delay, A's put resolved -> B's subscriber: median ${percentile(delays, 50).toFixed(1)} ms, ` +
      `p95 ${percentile(delays, 95).toFixed(1)} ms over ${delays.length} writes`,
  );

  // Both tabs patch the same five notes at once, each write a field of its own:
  // no update may be lost, and both mirrors end as IndexedDB holds them.
  const patch = (tab, prefix) =>
    tab.page.evaluate(async (prefix) => {
      const writes = [];
      for (let i = 0; i < 50; i++) writes.push(window.notes.patch(`n${i % 5}`, { [`${prefix}${i}`]: i }));
      await Promise.all(writes);
    }, prefix);
  await Promise.all([patch(a, "a"), patch(b, "b")]);
  const complete = () => {
    for (let n = 0; n < 5; n++) {
      if (Object.keys(window.notes.get(`n${n}`).data).length !== 1 + 20) return false;
    }
    return true;
  };
  await waitIn(a, "tab A to show every patch", complete);
  await waitIn(b, "tab B to show every patch", complete);
  const snapshot = (tab) => tab.page.evaluate(() => JSON.stringify(window.notes.all().map((r) => [r.id, r.data, r.meta.pending])));
  const fresh = await openTab(context);
  await openDb(fresh, name, null);
  const stored = await snapshot(fresh);
  assert.equal(await snapshot(a), stored, "tab A's mirror is what IndexedDB holds");
  assert.equal(await snapshot(b), stored, "tab B's mirror is what IndexedDB holds");
  assert.deepEqual([...a.errors, ...b.errors, ...fresh.errors], []);
  await context.close();
});

test("one tab syncs; the others hand it their syncs; when it closes mid-push another takes over, nothing lost or doubled", async () => {
  const user = "restart";
  const { context, a, b, name } = await twoTabsSyncing("leader", user);

  await pushLeftInFlight(a, b, 50);
  await a.page.close();

  await waitIn(b, "tab B to take over", () => window.db.status().syncer?.here === true);
  // Many triggers at once, from B and from a new tab handing its syncs to B.
  const c = await openTab(context);
  await openDb(c, name, user);
  await Promise.all([
    ...[1, 2, 3].map(() => b.page.evaluate(() => window.db.sync())),
    ...[1, 2].map(() => c.page.evaluate(() => window.db.sync())),
  ]);
  await waitIn(b, "tab B's outbox to empty", () => window.db.status().pending === 0);
  await assertPushedOnce(user, 50);
  assert.deepEqual([...b.errors, ...c.errors], []);
  await context.close();
});

// The Page Lifecycle events are dispatched by hand: Chromium's DevTools
// Page.setWebLifecycleState froze no visible headless page here, and fired no
// freeze or resume event.
test("a syncing tab that is frozen hands the sync lock on, and queues again when it resumes", async () => {
  const user = "converge";
  const { context, a, b } = await twoTabsSyncing("frozen", user);

  await a.page.evaluate(() => document.dispatchEvent(new Event("freeze")));
  await waitIn(b, "tab B to take over from the frozen tab", () => window.db.status().syncer?.here === true, undefined, 5_000);
  await b.page.evaluate(() => window.notes.put({ title: "while A is frozen" }, { id: "f1" }));
  assert.deepEqual((await serverNotes(user, 1)).map((n) => n.id), ["f1"], "B pushed it");

  await a.page.evaluate(() => document.dispatchEvent(new Event("resume")));
  await waitIn(a, "tab A, back, to see B syncing and B's write", () => window.db.status().syncer?.here === false && window.notes.get("f1") !== undefined);
  assert.deepEqual([...a.errors, ...b.errors], []);
  await context.close();
});

test("a syncing tab that enters the back/forward cache hands the sync lock on, and catches up from IndexedDB when restored", async () => {
  const user = "bfcache";
  const { context, a, b } = await twoTabsSyncing("bfcache", user);
  await a.page.evaluate(() => {
    window.restored = new Promise((resolve) => addEventListener("pageshow", (event) => resolve(event.persisted), { once: true }));
  });

  await a.page.goto("about:blank");
  await waitIn(b, "tab B to take over from the tab in the back/forward cache", () => window.db.status().syncer?.here === true, undefined, 5_000);
  await b.page.evaluate(() => window.notes.put({ title: "while A is in the cache" }, { id: "b1" }));
  assert.deepEqual((await serverNotes(user, 1)).map((n) => n.id), ["b1"], "B pushed it");

  await a.page.goBack({ waitUntil: "commit" });
  assert.equal(await a.page.evaluate(() => window.restored), true, "tab A came back from the back/forward cache, not from a new load");
  await waitIn(a, "tab A, restored, to see B syncing and B's write", () => window.db.status().syncer?.here === false && window.notes.get("b1") !== undefined);
  await a.page.evaluate(() => window.notes.put({ title: "after the restore" }, { id: "a1" }));
  assert.deepEqual((await serverNotes(user, 2)).map((n) => n.id).sort(), ["a1", "b1"], "B pushed A's write");
  assert.deepEqual([...a.errors, ...b.errors], []);
  await context.close();
});

test("a syncing tab that crashes mid-push: another takes over and pushes each write once", async () => {
  const user = "crash";
  const { context, a, b } = await twoTabsSyncing("crash", user);
  await pushLeftInFlight(a, b, 30);
  await crash(context, a);

  await waitIn(b, "tab B to take over from the crashed tab", () => window.db.status().syncer?.here === true, undefined, 5_000);
  await waitIn(b, "tab B's outbox to empty", () => window.db.status().pending === 0);
  await assertPushedOnce(user, 30);
  assert.deepEqual(b.errors, []);
  await context.close();
});

/**
 * Starts `db.sync()` in each tab and waits until each has handed it to the syncing
 * context; `settled(tab)` then gives `{ report }` or `{ error }`.
 */
async function syncsHandedOver(tabs) {
  for (const tab of tabs) {
    await tab.page.evaluate(() => {
      window.handed = new Promise((resolve) => window.db.on("log", (entry) => entry.step === "forwarded" && entry.direction === "sent" && resolve()));
      window.pending = window.db.sync().then(
        (report) => ({ report }),
        (error) => ({ error: `${error.code}: ${error.message}` }),
      );
    });
  }
  for (const tab of tabs) await tab.page.evaluate(() => window.handed);
  return { settled: (tab) => tab.page.evaluate(() => window.pending) };
}

/** Crashes the tab's renderer, as an out-of-memory kill would. */
async function crash(context, tab) {
  const crashed = new Promise((resolve) => tab.page.once("crash", resolve));
  const cdp = await context.newCDPSession(tab.page);
  cdp.send("Page.crash").catch(() => {});
  await crashed;
}

test("db.sync() calls the crashed syncer never answered: the tab that takes the lock answers its own and the others'", async () => {
  const user = "unanswered";
  const { context, a, b, name } = await twoTabsSyncing("unanswered", user);
  const c = await openTab(context);
  await openDb(c, name, user, { auto: false });
  await pushLeftInFlight(a, b, 10);
  const { settled } = await syncsHandedOver([b, c]);
  await crash(context, a);

  // B queued for the lock at open and takes it; C, opened with auto: false, only
  // asked, and hears that B leads. Neither waits out the 60 s for an answer from A.
  for (const tab of [b, c]) assert.ok((await settled(tab)).report, JSON.stringify(await settled(tab)));
  await waitIn(b, "tab B's outbox to empty", () => window.db.status().pending === 0);
  await assertPushedOnce(user, 10);
  assert.deepEqual([...b.errors, ...c.errors], []);
  await context.close();
});

test("a db.sync() the crashed syncer never answered, in a tab that does not sync: it takes the lock and syncs itself", async () => {
  const user = "orphaned";
  const context = await browser.newContext();
  const [a, c] = [await openTab(context), await openTab(context)];
  const name = `orphaned-${crypto.randomUUID()}`;
  await openDb(a, name, user);
  await waitIn(a, "tab A to hold the sync lock", () => window.db.status().syncer?.here === true);
  await openDb(c, name, user, { auto: false });
  await pushLeftInFlight(a, c, 10);
  const { settled } = await syncsHandedOver([c]);
  await crash(context, a);

  const answer = await settled(c);
  assert.equal(answer.report?.pushed, 10, JSON.stringify(answer));
  await assertPushedOnce(user, 10);
  assert.deepEqual(c.errors, []);
  await context.close();
});

test("a syncing dedicated worker that is terminated: the tab takes over and pushes what was queued", async () => {
  const user = "worker";
  const context = await browser.newContext();
  const tab = await openTab(context);
  const name = `worker-${crypto.randomUUID()}`;
  await tab.page.evaluate(async ({ name, user }) => {
    window.worker = new Worker(`/contexts-worker.js?name=${name}&user=${user}`, { type: "module" });
    await new Promise((resolve, reject) => {
      window.worker.onmessage = resolve;
      window.worker.onerror = (event) => reject(new Error(event.message));
    });
  }, { name, user });
  await openDb(tab, name, user);
  await waitIn(tab, "the tab to hear that the worker syncs", () => window.db.status().syncer?.here === false);

  await context.setOffline(true);
  await tab.page.evaluate(async () => {
    for (let i = 0; i < 20; i++) await window.notes.put({ title: `queued ${i}` }, { id: `w${i}` });
  });
  await tab.page.evaluate(() => window.worker.terminate());
  await waitIn(tab, "the tab to take over from the terminated worker", () => window.db.status().syncer?.here === true, undefined, 5_000);
  await context.setOffline(false);
  await waitIn(tab, "the tab's outbox to empty", () => window.db.status().pending === 0);
  await assertPushedOnce(user, 20);
  assert.deepEqual(tab.errors, []);
  await context.close();
});

/**
 * A context whose tabs are controlled by a service worker syncing the database `name`
 * as `user`: the module worker (pushing `batch` mutations at a time), or with
 * `classic` the classic one.
 */
async function underServiceWorker(name, user, tabs, { classic = false, batch = 1000, pushDelay = 0 } = {}) {
  const context = await browser.newContext();
  const opened = [];
  for (let i = 0; i < tabs; i++) opened.push(await openTab(context));
  const script = classic ? `/classic-sw.js?name=${name}&user=${user}` : `/contexts-sw.js?name=${name}&user=${user}&batch=${batch}&pushDelay=${pushDelay}`;
  await opened[0].page.evaluate(async ({ script, classic }) => {
    await navigator.serviceWorker.register(script, classic ? {} : { type: "module" });
    await navigator.serviceWorker.ready;
  }, { script, classic });
  for (const tab of opened) {
    await tab.page.reload();
    await tab.page.waitForSelector('html[data-ready="true"]');
    await waitIn(tab, "the service worker to control the tab", () => navigator.serviceWorker.controller !== null);
  }
  const cdp = await context.newCDPSession(opened[0].page);
  const registered = new Promise((resolve) =>
    cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
      const mine = registrations.find((r) => r.scopeURL.startsWith(server.url));
      if (mine) resolve(mine.registrationId);
    }),
  );
  await cdp.send("ServiceWorker.enable");
  const registrationId = await registered;
  const origin = new URL(server.url).origin;
  const tag = `tideway-sync:${name}`;
  /** Dispatches the worker's `sync` or `periodicsync` event through the DevTools protocol. */
  const dispatch = (type) =>
    type === "sync"
      ? cdp.send("ServiceWorker.dispatchSyncEvent", { origin, registrationId, tag, lastChance: false })
      : cdp.send("ServiceWorker.dispatchPeriodicSyncEvent", { origin, registrationId, tag });
  return { context, tabs: opened, cdp, tag, dispatch };
}

/**
 * Opens the database in `tab` and writes `count` notes there with the network off
 * (ids `${prefix}0`…, titles `${title} 0`…), then closes it and brings the network
 * back: the writes wait in the outbox, and no tab syncs them.
 */
async function queuedForTheWorker(context, tab, name, user, { count, prefix, title }) {
  await openDb(tab, name, user);
  await context.setOffline(true);
  await tab.page.evaluate(
    async ({ count, prefix, title }) => {
      const writes = [];
      for (let i = 0; i < count; i++) writes.push(window.notes.put({ title: `${title} ${i}` }, { id: `${prefix}${i}` }));
      await Promise.all(writes);
    },
    { count, prefix, title },
  );
  await tab.page.evaluate(() => window.db.close());
  await context.setOffline(false);
}

test("two tabs and the service worker on one database: the worker's Background Sync pushes what offline tabs queued while no tab syncs; then every trigger at once pushes each write once", async () => {
  const user = "offline";
  const name = `background-${crypto.randomUUID()}`;
  const { context, tabs, tag, dispatch } = await underServiceWorker(name, user, 2);
  const [a, b] = tabs;
  await openDb(a, name, user);
  await waitIn(a, "tab A to sync", () => window.db.status().syncer?.here === true);
  await openDb(b, name, user);
  await waitIn(b, "tab B to hear that A syncs", () => window.db.status().syncer?.here === false);
  await b.page.evaluate(() => {
    window.heard = new Set();
    window.notes.subscribe((changes) => changes.forEach((change) => window.heard.add(change.id)));
  });

  await context.setOffline(true);
  const failed = await a.page.evaluate(async () => {
    for (let i = 0; i < 5; i++) await window.notes.put({ title: `offline ${i}` }, { id: `o${i}` });
    try {
      await window.db.sync();
      return null;
    } catch (error) {
      return error.code;
    }
  });
  assert.equal(failed, "SYNC_FAILED");
  await waitIn(b, "tab B's get and subscription to show A's offline writes", () =>
    [0, 1, 2, 3, 4].every((i) => window.notes.get(`o${i}`)?.data.title === `offline ${i}` && window.heard.has(`o${i}`)),
  );
  await waitIn(a, "tab A to register a Background Sync", async (tag) => (await (await navigator.serviceWorker.ready).sync.getTags()).includes(tag), tag);
  // No tab syncs from here on: the database is closed in both tabs.
  await a.page.evaluate(() => window.db.close());
  await b.page.evaluate(() => window.db.close());
  await context.setOffline(false);

  await dispatch("sync");
  const pushed = await serverNotes(user, 5);
  assert.deepEqual(pushed.map((n) => n.id).sort(), ["o0", "o1", "o2", "o3", "o4"]);

  // The tabs sync again; writes queued offline in both meet every trigger at once
  // when the network returns: the syncing tab's own, db.sync() in both tabs, the
  // worker's sync and periodicsync events, and the message engines without
  // Background Sync use (answered by the worker).
  await openDb(a, name, user);
  await waitIn(a, "tab A to sync again", () => window.db.status().syncer?.here === true);
  await openDb(b, name, user);
  await context.setOffline(true);
  for (const [tab, prefix] of [[a, "qa"], [b, "qb"]]) {
    await tab.page.evaluate(async (prefix) => {
      for (let i = 0; i < 10; i++) await window.notes.put({ title: `queued ${i}` }, { id: `${prefix}${i}` });
    }, prefix);
  }
  await context.setOffline(false);
  const [answer] = await Promise.all([
    b.page.evaluate(async (name) => {
      const reply = new Promise((resolve) =>
        navigator.serviceWorker.addEventListener("message", (event) => event.data?.type === "tideway-synced" && resolve(event.data)),
      );
      navigator.serviceWorker.controller.postMessage({ type: "tideway-sync", name });
      return reply;
    }, name),
    a.page.evaluate(() => Promise.all([window.db.sync(), window.db.sync()])),
    b.page.evaluate(() => window.db.sync()),
    dispatch("sync"),
    dispatch("periodicsync"),
  ]);
  assert.equal(answer.error, undefined, JSON.stringify(answer));
  await waitIn(a, "tab A's outbox to empty", () => window.db.status().pending === 0);
  await waitIn(b, "tab B's outbox to empty", () => window.db.status().pending === 0);
  await assertPushedOnce(user, 25);
  assert.deepEqual([...a.errors, ...b.errors], []);
  await context.close();
});

test("the worker's Periodic Background Sync pushes alone; a worker stopped mid-sync leaves nothing syncing, and the tab pushes the rest once", async () => {
  const user = "swstop";
  const name = `stopped-${crypto.randomUUID()}`;
  const { context, tabs, cdp, dispatch } = await underServiceWorker(name, user, 1, { batch: 100, pushDelay: 100 });
  const [tab] = tabs;
  await queuedForTheWorker(context, tab, name, user, { count: 5, prefix: "p", title: "periodic" });
  await dispatch("periodicsync");
  assert.equal((await serverNotes(user, 5)).length, 5, "the periodicsync event pushed the queue");

  // 1000 writes are ten pushes of 100 (the worker's batch size here), each held
  // 100 ms on its way out: the worker is stopped once the first is on the
  // server, which leaves it several to go however fast the server is.
  await queuedForTheWorker(context, tab, name, user, { count: 1000, prefix: "s", title: "queued" });
  await dispatch("sync");
  await serverNotes(user, 6);
  await cdp.send("ServiceWorker.stopAllWorkers");
  const atStop = (await server.pullAll(user)).filter((change) => !change.deleted).length - 5;
  assert.ok(atStop < 1000, `the worker was stopped before it pushed everything (${atStop} of 1000 were on the server)`);

  await openDb(tab, name, user);
  await waitIn(tab, "the tab to take the sync lock the stopped worker held", () => window.db.status().syncer?.here === true, undefined, 5_000);
  await waitIn(tab, "the tab's outbox to empty", () => window.db.status().pending === 0);
  const stored = await tab.page.evaluate(() => window.notes.all().filter((r) => r.meta.syncStatus !== "synced").map((r) => r.id));
  assert.deepEqual(stored, [], "nothing stays unsynced or syncing");
  await assertPushedOnce(user, 1005);
  console.log(`service worker stopped with ${atStop} of 1000 writes on the server; the tab pushed the rest`);
  assert.deepEqual(tab.errors, []);
  await context.close();
});

test("a classic service worker with the bundled entry point pushes what an offline tab queued", async () => {
  const user = "classic";
  const name = `classic-${crypto.randomUUID()}`;
  const { context, tabs, dispatch } = await underServiceWorker(name, user, 1, { classic: true });
  const [tab] = tabs;
  await queuedForTheWorker(context, tab, name, user, { count: 3, prefix: "c", title: "classic" });
  await dispatch("sync");
  assert.deepEqual((await serverNotes(user, 3)).map((n) => n.id).sort(), ["c0", "c1", "c2"]);
  assert.deepEqual(tab.errors, []);
  await context.close();
});
