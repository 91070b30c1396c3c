// What recording the server's acknowledgements of a push costs raw IndexedDB, in two
// layouts (driven by acks.mjs), Tideway's being the second. Each run fills a database as a push leaves it before
// its answers come: `count` notes laid out as Tideway stores them (`{id, doc, ix}`),
// each with one outbox entry. Then it records the answers in batches of `batch`, one
// readwrite transaction per batch, each begun once the one before committed, as the
// sync engine records them:
//
//   rewrite   the batch's outbox entries deleted (one key range), each note's record
//             put again with its new version and sync status: the layout before
//             storage format 4, and today's for batches of fewer than 100
//   log       the same deletion, and records of the acknowledgement log holding,
//             per note, the doc the acknowledgement was made on and the doc it
//             leaves, up to 250 to a record (see src/store/layout.rs); folded
//             into the records later

import { makeNotes } from "./dataset.js";
import { committed, request } from "./idb.js";

const doc = (note, meta) => JSON.stringify({ id: note.id, data: note.data, updatedAt: 1, ...meta });

/** Records `count` acknowledgements in batches of `batch` with `layout`: the time in all, and in `put` calls. */
export async function record(layout, count, batch) {
  const open = indexedDB.open(`acks-${layout}-${crypto.randomUUID()}`, 1);
  open.onupgradeneeded = () => {
    open.result.createObjectStore("e:notes", { keyPath: "id" });
    open.result.createObjectStore("outbox", { keyPath: "mutationId", autoIncrement: true });
    open.result.createObjectStore("acks", { autoIncrement: true });
  };
  const db = await request(open);
  const notes = makeNotes(count);
  const fill = db.transaction(["e:notes", "outbox"], "readwrite");
  const dirty = notes.map((note) => doc(note, { version: 0, syncStatus: "dirty", pending: 1 }));
  for (const [i, note] of notes.entries()) {
    fill.objectStore("e:notes").put({ id: note.id, doc: dirty[i], ix: {} });
    fill.objectStore("outbox").put({ doc: JSON.stringify({ collection: "notes", id: note.id, op: "put", data: note.data }) });
  }
  await committed(fill);
  const acked = notes.map((note) =>
    doc(note, { version: 1, serverUpdatedAt: 5, syncStatus: "synced", remoteId: note.id, baseIsData: true }),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));

  let putMs = 0;
  const started = performance.now();
  for (let first = 0; first < count; first += batch) {
    const last = Math.min(first + batch, count);
    const stores = layout === "rewrite" ? ["e:notes", "outbox"] : ["acks", "outbox"];
    const tx = db.transaction(stores, "readwrite");
    tx.objectStore("outbox").delete(IDBKeyRange.bound(first + 1, last));
    const putting = performance.now();
    if (layout === "rewrite") {
      const entities = tx.objectStore("e:notes");
      for (let i = first; i < last; i++) entities.put({ id: notes[i].id, doc: acked[i], ix: {} });
    } else {
      // Up to 250 acknowledgements to a record, as Tideway writes them.
      for (let at = first; at < last; at += 250) {
        const entries = [];
        for (let i = at; i < Math.min(at + 250, last); i++) entries.push("e:notes", notes[i].id, dirty[i], acked[i]);
        tx.objectStore("acks").add({ entries });
      }
    }
    putMs += performance.now() - putting;
    await committed(tx);
  }
  const ms = performance.now() - started;
  db.close();
  return { ms, putMs };
}
