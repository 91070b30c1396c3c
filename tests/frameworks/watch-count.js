// What the React and Vue test apps share: a count of the watches a collection
// handle has open, through the very methods the adapters call.

/** Counts the watches open on a collection handle (StrictMode must leave one per hook). */
export function counting(collection) {
  const watching = { count: 0 };
  for (const method of ["watch", "watchRecord"]) {
    const original = collection[method].bind(collection);
    collection[method] = (...args) => {
      const stop = original(...args);
      watching.count++;
      let stopped = false;
      return () => {
        if (!stopped) watching.count--;
        stopped = true;
        stop();
      };
    };
  }
  return watching;
}
