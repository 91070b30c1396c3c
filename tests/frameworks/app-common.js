// What the React and Vue test apps share: their database, opened and closed the
// same way, and a count of the watches a collection handle has open, through the
// very methods the adapters call.

import { Tideway } from "tideway";

/**
 * The database half of each app's `window.app`: `open(name)` opens `notes` (with a
 * title index) and `tags`, sets `db`, `notes`, `tags` and `watching` (the count of
 * watches open on `notes`), and resolves with the database's name.
 */
export const database = {
  async open(name) {
    this.db = await Tideway.open({ name, collections: { notes: { indexes: ["title"] }, tags: {} } });
    this.notes = this.db.collection("notes");
    this.tags = this.db.collection("tags");
    this.watching = counting(this.notes);
    return this.db.name;
  },
  close() {
    return this.db.close();
  },
  deleteDatabase: (name) => Tideway.deleteDatabase(name),
  /** The text of the element `id`, or null. */
  text: (id) => document.getElementById(id)?.textContent ?? null,
};

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
