// Svelte stores over live queries (`tideway/svelte`): each follows Svelte's
// store contract (`subscribe` calls back at once and returns the unsubscriber),
// so `$notes` works in a component. Needs nothing from Svelte itself.

import { watchStatus } from "./live-store.js";

/** A readable store of the records `collection.query(query)` gives. */
export function query(collection, query) {
  return { subscribe: (run) => collection.watch(query, run) };
}

/** A readable store of the record `collection.get(id)` gives. */
export function record(collection, id) {
  return { subscribe: (run) => collection.watchRecord(id, run) };
}

/** A readable store of `db.status()`. */
export function syncStatus(db) {
  return { subscribe: (run) => watchStatus(db, run) };
}
