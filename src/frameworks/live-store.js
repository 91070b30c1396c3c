// What the framework adapters share: a store over a watch, as
// useSyncExternalStore and friends want one.

/** Whether two query results hold the very same records, in the same order. */
export function sameRecords(a, b) {
  return a.length === b.length && a.every((record, i) => record === b[i]);
}

/**
 * A store over `watch(callback)` (which calls back at once, then on each new
 * value, and returns the function that stops it). While nothing subscribes,
 * `getSnapshot` reads the value again with `read` on every call (a render in a
 * transition may run before the subscription, and React checks the snapshot
 * again before committing, so it must not be stale); once subscribed, the
 * watch keeps it current. A value `same` as the one held is not taken: the
 * snapshot stays `===` and nothing renders again.
 */
export function liveStore(watch, read, same = Object.is) {
  let held = false;
  let current;
  let subscribed = 0;
  const take = (next) => {
    if (held && same(current, next)) return false;
    current = next;
    held = true;
    return true;
  };
  return {
    getSnapshot() {
      if (subscribed === 0) take(read());
      return current;
    },
    subscribe(notify) {
      subscribed++;
      const stop = watch((next) => {
        if (take(next)) notify();
      });
      return () => {
        subscribed--;
        stop();
      };
    },
  };
}

/** Watches a database's status: at once, then on every status event and every committed change. */
export function watchStatus(db, callback) {
  const report = () => callback(db.status());
  const stops = [db.on("status", report), db.on("change", report)];
  report();
  return () => stops.forEach((stop) => stop());
}

/** Whether two status reports say the same. */
export function sameStatus(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
