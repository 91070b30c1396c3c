// The notes data layer: the one module that talks to Tideway. The UI gets frozen records
// and calls intent-named methods; the network and sync status reach it through `onStatus`.

import { Tideway } from "../pkg/index.js";

export const DATABASE_NAME = "tideway-notes";

/**
 * `updatedAt` (metadata) orders the list; `title` is there for lookups by title. A note
 * changed on two devices before either synced waits in `conflict` until the user picks a
 * side (the editor shows both, as does the debug screen).
 */
export const COLLECTIONS = { notes: { indexes: ["updatedAt", "title"], conflict: "manual" } };

/** The token `scripts/demo.sh` gives the reference server (`--token demo:demo`). */
export const DEMO_TOKEN = "demo";
const SYNC_SERVER_SEEN = "tideway-notes:sync-server";

/**
 * Whether this page is served by a Tideway sync server. Remembered once seen, so that a
 * reload while offline still opens the database with sync (and syncs when back online).
 */
async function syncServerHere() {
  if (localStorage.getItem(SYNC_SERVER_SEEN) === location.origin) return true;
  try {
    const response = await fetch("/v1/health", { cache: "no-store", signal: AbortSignal.timeout(2000) });
    if (!response.ok) return false;
    localStorage.setItem(SYNC_SERVER_SEEN, location.origin);
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens the notes database (loading the wasm module first; every note is in memory
 * after this), syncing with the server that serves the page when there is one.
 */
export async function openNoteStore() {
  const sync = (await syncServerHere()) ? { url: location.origin, getToken: () => DEMO_TOKEN } : undefined;
  const db = await Tideway.open({ name: DATABASE_NAME, collections: COLLECTIONS, sync });
  return new NoteStore(db, Boolean(sync));
}

export class NoteStore {
  constructor(db, syncing) {
    this.db = db;
    this.notes = db.collection("notes");
    /** Whether this database syncs with a server. */
    this.syncing = syncing;
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

  /**
   * Both sides of a note changed here and on another device, or `undefined`:
   * `{ id, local, server, base, serverVersion }` (a side is `null` where it deleted the note).
   */
  conflictOf(id) {
    return this.notes.conflicts().find((conflict) => conflict.id === id);
  }

  /** Settles a conflict with the chosen side's data (`null` deletes the note); it syncs like any write. */
  resolve(id, data) {
    return this.notes.resolve(id, data);
  }

  /** How many changes wait in the outbox for a sync. */
  pendingCount() {
    return this.db.pendingCount();
  }

  /**
   * Calls `callback(status)` now and whenever the status changes: a sync starting or
   * ending, the network coming or going. Without a server it tells what is true locally.
   * @returns {() => void} the unsubscribe function
   */
  onStatus(callback) {
    callback(this.db.status());
    return this.db.on("status", callback);
  }
}
