// The editor pane. It saves by itself shortly after typing stops (and at once when the
// user moves away), so there is no Save button to forget: every keystroke is safe on the
// device within half a second, online or not.

import { formatWhen, syncLabel } from "./format.js";

const AUTOSAVE_DELAY_MS = 400;

export class NoteEditor {
  /**
   * @param {object} parts
   * @param {HTMLElement} parts.root
   * @param {(id: string | null, fields: {title: string, body: string}) => {id: string, written: Promise<unknown>} | null} parts.onSave
   *   writes the fields (creating the note when `id` is null) and returns the note's id at once
   * @param {(id: string) => void} parts.onDelete
   * @param {(id: string, data: object | null) => void} parts.onResolve
   *   settles the open note's conflict with one side's data (`null`: that side deleted it)
   */
  constructor({ root, onSave, onDelete, onResolve }) {
    this.root = root;
    this.title = root.querySelector("#note-title");
    this.body = root.querySelector("#note-body");
    this.saveState = root.querySelector("#save-state");
    this.meta = root.querySelector("#note-meta");
    this.conflictBanner = root.querySelector("#conflict");
    this.conflict = null;
    this.onSave = onSave;
    this.id = null;
    this.dirty = false;
    this.timer = null;
    this.lastWrite = null;

    for (const field of [this.title, this.body]) {
      field.addEventListener("input", () => this.changed());
      field.addEventListener("blur", () => this.save());
    }
    this.title.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.body.focus();
      }
    });
    const resolveWith = (side) => () => {
      if (!this.id || !this.conflict) return;
      // Edits typed meanwhile would settle the conflict on their own: the user chose a side.
      clearTimeout(this.timer);
      this.dirty = false;
      onResolve(this.id, this.conflict[side]);
    };
    root.querySelector("#keep-mine").addEventListener("click", resolveWith("local"));
    root.querySelector("#take-theirs").addEventListener("click", resolveWith("server"));
    root.querySelector("#delete-note").addEventListener("click", () => {
      const id = this.id;
      this.close();
      if (id) onDelete(id);
    });
  }

  get isOpen() {
    return !this.root.hidden;
  }

  /** Opens a note, or a blank draft for `null` (created on the first real keystroke). */
  open(record) {
    this.save();
    this.id = record?.id ?? null;
    this.title.value = record?.data.title ?? "";
    this.body.value = record?.data.body ?? "";
    this.dirty = false;
    this.lastWrite = null;
    this.setState("idle", "");
    this.showMeta(record);
    this.root.hidden = false;
    (record ? this.body : this.title).focus();
  }

  close() {
    this.save();
    this.id = null;
    this.root.hidden = true;
  }

  /** Writes pending edits now. Safe to call at any time. */
  save() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.dirty) return;
    this.dirty = false;
    const fields = { title: this.title.value.trim(), body: this.body.value };
    if (this.id === null && !fields.title && !fields.body.trim()) return; // an untouched draft

    const result = this.onSave(this.id, fields);
    if (!result) return;
    this.id = result.id;
    const write = (this.lastWrite = result.written);
    this.setState("saving", "Saving…");
    write.then(
      () => {
        if (this.lastWrite === write && !this.dirty) this.setState("saved", "Saved on this device");
      },
      (error) => {
        if (this.lastWrite === write) this.setState("error", `Not saved: ${error.message}`);
      },
    );
  }

  /**
   * Shows both sides of the open note's conflict (`collection.conflicts()` entry), or hides
   * the banner for `undefined`.
   */
  showConflict(conflict) {
    this.conflict = conflict ?? null;
    this.conflictBanner.hidden = !conflict;
    if (!conflict) return;
    for (const side of ["local", "server"]) {
      const data = conflict[side];
      this.conflictBanner.querySelector(`.side-title[data-side="${side}"]`).textContent = data ? data.title || "Untitled" : "Deleted";
      this.conflictBanner.querySelector(`.side-body[data-side="${side}"]`).textContent = data?.body ?? "";
    }
  }

  /** Refreshes the footer from the stored record (after a commit, a rollback, a sync). */
  showMeta(record) {
    if (!record) {
      this.meta.textContent = this.id ? "" : "New note";
      return;
    }
    const created = record.data.createdAt ? `Created ${formatWhen(record.data.createdAt)} · ` : "";
    this.meta.textContent = `${created}Edited ${formatWhen(record.meta.updatedAt)} · ${syncLabel(record.meta.syncStatus)}`;
  }

  changed() {
    this.dirty = true;
    this.setState("editing", "Editing…");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), AUTOSAVE_DELAY_MS);
  }

  setState(state, text) {
    this.saveState.dataset.state = state;
    this.saveState.textContent = text;
  }
}
