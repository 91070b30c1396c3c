// Tideway in a service worker: Background Sync, Periodic Background Sync and
// a plain message each push the outbox and pull, once, inside the event's
// `waitUntil`. Import it from the package in a module service worker:
//
//   import { syncInServiceWorker } from "tideway/service-worker";
//   syncInServiceWorker({ open: { name: "my-app", collections: { notes: {} }, sync: { url: "/" } } });
//
// Call it at the top level of the worker: browsers only deliver events to
// listeners added while the worker script first runs.

import init, { Tideway } from "./index.js";

/** Where the worker keeps the wasm module, so that it starts offline. */
const MODULE_CACHE = "tideway-module";

/**
 * Adds the `install`, `sync`, `periodicsync` and `message` listeners that sync
 * the database `open` describes (the options of `Tideway.open`; its automatic
 * triggers are turned off here, a worker syncs on these events only).
 *
 * - `sync` / `periodicsync` with the tag `tideway-sync:<name>` (the tag a page
 *   registers when a push fails for want of network);
 * - a `message` `{ type: "tideway-sync", name }` from a page (engines without
 *   Background Sync), answered with `{ type: "tideway-synced", name, report }`
 *   or `{ ..., error }` to the page that sent it.
 *
 * Where a page already syncs the database, the sync is handed to it; otherwise
 * the worker takes the database's sync lock for the length of the sync.
 * `moduleUrl` is where the wasm module is served, by default beside this file
 * (a bundle for a classic worker passes it). Returns `{ sync, database }`: a
 * sync now, and the open database.
 */
export function syncInServiceWorker({ open, moduleUrl }) {
  if (!open?.name) throw new TypeError("syncInServiceWorker needs the `open` options of Tideway.open, with a name");
  const tag = `tideway-sync:${open.name}`;
  const module = new URL(moduleUrl ?? new URL("./tideway_bg.wasm", import.meta.url), self.location.href).href;
  let opened = null;
  const database = () => {
    opened ??= init({ module_or_path: cachedModule(module) })
      .then(() => Tideway.open({ ...open, sync: { ...open.sync, auto: false } }))
      .catch((error) => {
        opened = null;
        throw error;
      });
    return opened;
  };
  const sync = async () => (await database()).sync();

  self.addEventListener("install", (event) => {
    event.waitUntil(caches.open(MODULE_CACHE).then((cache) => cache.add(module)));
  });
  for (const type of ["sync", "periodicsync"]) {
    self.addEventListener(type, (event) => {
      if (event.tag === tag) event.waitUntil(sync());
    });
  }
  self.addEventListener("message", (event) => {
    const { data, source } = event;
    if (data?.type !== "tideway-sync" || data.name !== open.name) return;
    const reply = (answer) => source?.postMessage({ type: "tideway-synced", name: open.name, ...answer });
    event.waitUntil(
      sync().then(
        (report) => reply({ report }),
        (error) => reply({ error: { message: error.message, code: error.code } }),
      ),
    );
  });
  return { sync, database };
}

/** The wasm module from the worker's cache, or from the network (then kept). */
async function cachedModule(url) {
  const cache = await caches.open(MODULE_CACHE);
  const cached = await cache.match(url);
  if (cached) return cached;
  const response = await fetch(url);
  if (response.ok) await cache.put(url, response.clone());
  return response;
}
