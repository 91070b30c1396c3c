// Boots the notes app: opens the store, wires the views to it, and re-renders from the
// store after every change, so whatever changed a note (this page, a rollback, later a
// sync) the screen shows the same truth.

import { openNoteStore } from "./notes-store.js";
import { NoteList } from "./note-list.js";
import { NoteEditor } from "./note-editor.js";
import { StatusBar } from "./status-bar.js";
import { registerOfflineSupport } from "./offline.js";
import { showFatal, showToast } from "./feedback.js";
import "../pkg/inspector.js";

const $ = (id) => document.getElementById(id);
const DEBUG_SHOWN = "tideway-notes:debug";

const statusBar = new StatusBar($("status-bar"));
registerOfflineSupport({ onReady: () => statusBar.setOfflineReady(true) });

let store;
try {
  store = await openNoteStore();
} catch (error) {
  console.error(error);
  showFatal(error);
}
if (store) start(store);

function start(store) {
  const list = new NoteList({
    list: $("note-list"),
    empty: $("empty-list"),
    summary: $("list-summary"),
    onSelect: (id) => select(store.get(id)),
  });

  const editor = new NoteEditor({
    root: $("editor"),
    onSave(id, fields) {
      if (id === null) {
        const created = store.create(fields);
        queueMicrotask(render); // after the editor has taken the new id
        return created;
      }
      const written = store.update(id, fields);
      queueMicrotask(render);
      return { id, written };
    },
    onDelete(id) {
      store.remove(id).then(
        () => showToast("Note deleted"),
        (error) => showToast(`Could not delete: ${error.message}`, { kind: "error" }),
      );
      render();
    },
    onResolve(id, data) {
      store.resolve(id, data).then(
        () => {
          const record = store.get(id);
          if (record) editor.open(record);
          else editor.close();
          showToast("Conflict resolved");
          render();
        },
        (error) => showToast(`Could not resolve: ${error.message}`, { kind: "error" }),
      );
    },
  });

  function select(record) {
    editor.open(record);
    render();
  }

  let pendingQuery = 0;
  function render() {
    const selectedId = editor.isOpen ? editor.id : null;
    list.render(store.list(), selectedId);
    $("placeholder").hidden = editor.isOpen;
    if (editor.isOpen && editor.id) editor.showMeta(store.get(editor.id));
    editor.showConflict(editor.isOpen && editor.id ? store.conflictOf(editor.id) : undefined);

    // pendingCount is async: only the answer to the latest question is shown.
    const asked = ++pendingQuery;
    store.pendingCount().then(
      (count) => asked === pendingQuery && statusBar.setPending(count),
      (error) => console.warn("pendingCount failed", error),
    );
  }

  store.onChange((changes) => {
    for (const change of changes) {
      if (change.origin === "rollback") {
        showToast(`A change could not be saved and was undone: ${change.error?.message ?? "unknown error"}`, {
          kind: "error",
          duration: 6000,
        });
      }
    }
    render();
  });

  for (const button of [$("new-note"), ...document.querySelectorAll('[data-action="new-note"]')]) {
    button.addEventListener("click", () => select(null));
  }
  // Edits in flight reach the mirror synchronously; this gives them their best chance to
  // become durable before the page goes away.
  addEventListener("pagehide", () => editor.save());
  document.addEventListener("visibilitychange", () => document.hidden && editor.save());
  setInterval(render, 30_000); // keeps "5 minutes ago" honest

  store.onStatus((status) => {
    statusBar.setOnline(status.online);
    if (store.syncing) statusBar.setSync(status);
    render();
  });

  // The debug screen: the database as Tideway's inspector shows it. It follows the
  // database from the start (so its log holds the first sync), drawn only when shown.
  const inspector = $("inspector");
  inspector.db = store.db;
  const debug = $("debug");
  const toggle = $("debug-toggle");
  const showDebug = (shown) => {
    debug.hidden = !shown;
    inspector.hidden = !shown;
    toggle.setAttribute("aria-pressed", String(shown));
    localStorage.setItem(DEBUG_SHOWN, shown ? "1" : "");
  };
  toggle.addEventListener("click", () => showDebug(debug.hidden));
  showDebug(localStorage.getItem(DEBUG_SHOWN) === "1");

  // For the console and the end-to-end tests.
  window.tidewayNotes = { db: store.db, store };

  render();
  document.documentElement.dataset.appReady = "true";
}
