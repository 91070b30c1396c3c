// Vue composables over live queries (`tideway/vue`): each returns a shallowRef
// that a watch keeps current. Call them in `setup` (or an effect scope): the
// watch stops with it. Arguments may be refs or getters; when one changes, the
// composable watches anew.

import { shallowRef, toValue, watchEffect } from "vue";
import { sameRecords, sameStatus, watchStatus } from "./live-store.js";

/** A shallowRef of what `watch(callback)` calls back with, set only when it differs (`same`). */
function follow(watch, same) {
  const value = shallowRef();
  // Compared with a copy: reading `value.value` inside the effect would make it depend on its own output.
  let held = false;
  let current;
  const take = (next) => {
    if (held && same(current, next)) return;
    held = true;
    current = next;
    value.value = next;
  };
  // The effect runs at once, so the ref holds a value before this returns.
  watchEffect((onCleanup) => onCleanup(watch(take)));
  return value;
}

/** The records `collection.query(query)` gives, kept current. */
export function useQuery(collection, query) {
  return follow((callback) => toValue(collection).watch(toValue(query), callback), sameRecords);
}

/** The record `collection.get(id)` gives, kept current (`undefined` while there is none). */
export function useRecord(collection, id) {
  return follow((callback) => toValue(collection).watchRecord(toValue(id), callback), Object.is);
}

/** `db.status()`, kept current: on sync and network events and after every committed change. */
export function useSyncStatus(db) {
  return follow((callback) => watchStatus(toValue(db), callback), sameStatus);
}
