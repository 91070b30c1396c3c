// Registers the service worker that lets the app start without a network, and tells the
// page once everything it loaded is in the worker's cache.

/**
 * @param {{ onReady: () => void }} handlers `onReady` runs once the app can start offline
 */
export function registerOfflineSupport({ onReady }) {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("./sw.js", { type: "module" }).catch((error) => {
    console.warn("Service worker registration failed; the app will not start offline.", error);
  });
  navigator.serviceWorker.ready.then(async (registration) => {
    // The first visit is not served by the worker, so hand it the URLs this page loaded
    // (wasm-bindgen snippets, for one, have names only known after a build).
    const urls = [location.href, ...performance.getEntriesByType("resource").map((entry) => entry.name)];
    const worker = registration.active;
    if (!worker) return;
    const reply = new MessageChannel();
    const cached = new Promise((resolve) => (reply.port1.onmessage = resolve));
    worker.postMessage({ type: "cache-urls", urls }, [reply.port2]);
    await cached;
    document.documentElement.dataset.offlineReady = "true";
    onReady();
  });
}
