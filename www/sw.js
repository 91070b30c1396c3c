// Service worker of Tideway Notes: keeps the app shell and the wasm package in a cache so
// the app starts with no network. The data itself lives in IndexedDB, not here.
//
// Network first, cache as fallback: online, the page always gets matching, current
// tideway.js and .wasm files (a stale pair after a rebuild would fail to link); offline,
// or when the network hangs past NETWORK_TIMEOUT_MS, the cached copy answers.
//
// It is a module worker: the package's entry point handles Background Sync (Chromium),
// Periodic Background Sync and a `tideway-sync` message for the notes database, so writes
// made offline are pushed once the network is back even if no tab is open.
//
// Every lookup ignores `Vary`: the reference server answers with `Vary: origin` (its
// CORS layer), module scripts are requested with an `Origin` header and `cache.addAll`
// stores its copies without one, so a lookup that honoured `Vary` would miss every
// module offline. The files are the same whatever the origin header said.

import { syncInServiceWorker } from "./pkg/service-worker.js";
import { COLLECTIONS, DATABASE_NAME, DEMO_TOKEN } from "./js/notes-store.js";

// Listeners must be added while the worker script first runs.
syncInServiceWorker({
  open: { name: DATABASE_NAME, collections: COLLECTIONS, sync: { url: self.location.origin, getToken: () => DEMO_TOKEN } },
});

const CACHE = "tideway-notes-shell-v3";
const NETWORK_TIMEOUT_MS = 3000;

const SHELL = [
  "./",
  "./index.html",
  "./style.css",
  "./icon.svg",
  "./manifest.webmanifest",
  "./js/main.js",
  "./js/notes-store.js",
  "./js/note-list.js",
  "./js/note-editor.js",
  "./js/status-bar.js",
  "./js/offline.js",
  "./js/feedback.js",
  "./js/format.js",
  "./pkg/tideway.js",
  "./pkg/tideway_bg.wasm",
  "./pkg/service-worker.js",
  "./pkg/inspector.js",
];
const SHELL_URLS = new Set(SHELL.map((path) => new URL(path, self.registration.scope).href));
const PKG_PREFIX = new URL("./pkg/", self.registration.scope).href;
const JS_PREFIX = new URL("./js/", self.registration.scope).href;

const MATCH = { ignoreVary: true };

// The package's own files (pkg/files.json, written by scripts/build.sh) include the
// library's JS, which wasm-bindgen puts in a directory named after a hash of the build.
self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then(async (cache) => {
        const listing = await fetch("./pkg/files.json", { cache: "no-store" });
        if (!listing.ok) throw new Error(`pkg/files.json answered ${listing.status}: build the package first`);
        // addAll refuses a list that names a file twice.
        const urls = new Set([...SHELL, ...(await listing.json())].map((path) => new URL(path, self.registration.scope).href));
        await cache.addAll([...urls]);
      })
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET") return;
  if (request.mode === "navigate" || isShell(request.url)) {
    event.respondWith(networkFirst(event));
  }
  // Anything else (a sync API, say) goes to the network untouched.
});

// The page sends the URLs it loaded before this worker controlled it.
self.addEventListener("message", (event) => {
  if (event.data?.type !== "cache-urls") return;
  const urls = event.data.urls.map(stripHash).filter(isShell);
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) =>
        Promise.all(
          urls.map(async (url) => {
            if (!(await cache.match(url, MATCH))) await cache.add(url);
          }),
        ),
      )
      .catch((error) => console.warn("caching the page's files failed", error))
      .finally(() => event.ports[0]?.postMessage({ type: "cached" })),
  );
});

function isShell(url) {
  url = stripHash(url);
  const path = url.split("?")[0];
  return SHELL_URLS.has(path) || path.startsWith(PKG_PREFIX) || path.startsWith(JS_PREFIX);
}

function stripHash(url) {
  return url.split("#")[0];
}

async function networkFirst(event) {
  const { request } = event;
  const cache = await caches.open(CACHE);
  try {
    const response = await withTimeout(fetch(request), NETWORK_TIMEOUT_MS);
    // Only the shell is kept: a navigation elsewhere (an API URL opened in a tab) is not.
    if (response.ok && isShell(request.url)) event.waitUntil(cache.put(request, response.clone()));
    return response;
  } catch (error) {
    const cached =
      (await cache.match(request, { ...MATCH, ignoreSearch: true })) ??
      (request.mode === "navigate" ? await cache.match("./", MATCH) : undefined);
    if (cached) return cached;
    throw error;
  }
}

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error) => (clearTimeout(timer), reject(error)),
    );
  });
}
