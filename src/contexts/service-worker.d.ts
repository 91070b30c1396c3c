import type { OpenOptions, SyncReport, Tideway } from "./tideway.js";

/**
 * Syncs the database `open` describes from a module service worker: on `sync` and
 * `periodicsync` events tagged `tideway-sync:<name>`, and on a message
 * `{ type: "tideway-sync", name }` (answered `{ type: "tideway-synced", name, report | error }`).
 * Caches the wasm module on `install` so the worker starts offline. Call it at the top
 * level of the worker script.
 */
export function syncInServiceWorker(options: {
  open: OpenOptions;
  /** Where the wasm module is served; by default beside `service-worker.js`. */
  moduleUrl?: string | URL;
}): {
  /** One sync now: here, or by the tab that syncs the database. */
  sync(): Promise<SyncReport>;
  /** The database, opened (once) with automatic sync off. */
  database(): Promise<Tideway>;
};
