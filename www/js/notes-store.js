// The notes data layer: the one module that talks to Tideway. The UI gets frozen records
// and calls intent-named methods, so a sync engine (status, pull, conflicts) plugs in here
// without the views changing.

import init, { Tideway } from "../pkg/tideway.js";

export const DATABASE_NAME = "tideway-notes";

/** `updatedAt` (metadata) orders the list; `title` is there for lookups by title. */
export const COLLECTIONS = { notes: { indexes: ["updatedAt", "title"] } };

/** Loads the wasm module and opens the notes database (every note is in memory after this). */
export async function openNoteStore() {
  await init();
  const db = await Tideway.open({ name: DATABASE_NAME, collections: COLLECTIONS });
  return new NoteStore(db);
}

export class NoteStore {
  constructor(db) {
    this.db = db;
    this.notes = db.collection("notes");
  }

  /** Live notes, most recently changed first. Synchronous: answered from memory. */
  list() {
    return this.notes.query({ index: "updatedAt", reverse: true });
  }

  get(id) {
    return this.notes.get(id);
  }

  /**
   * Creates a note. The id is chosen here, synchronously, so an editor can keep typing
   * into the same note while the first write is still becoming durable.
   * @returns {{ id: string, written: Promise<unknown> }}
   */
  create({ title, body }) {
    const id = crypto.randomUUID();
    const written = this.notes.put({ title, body, tags: [], done: false, createdAt: Date.now() }, { id });
    return { id, written };
  }

  /** Changes the given fields only; the promise settles once the change is durable. */
  update(id, fields) {
    return this.notes.patch(id, fields);
  }

  /** Deletes (a tombstone stays until the delete has synced). */
  remove(id) {
    return this.notes.delete(id);
  }

  /** Called after each committed or rolled back change; returns the unsubscribe function. */
  onChange(callback) {
    return this.notes.subscribe(callback);
  }

  /** How many changes wait in the outbox for a sync. */
  pendingCount() {
    return this.db.pendingCount();
  }
}
