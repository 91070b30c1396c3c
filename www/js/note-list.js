// The sidebar list: renders records as given (the store decides the order) and reports
// which note the user picked.

import { formatWhen, syncLabel } from "./format.js";

export class NoteList {
  /** @param {{ list: HTMLElement, empty: HTMLElement, summary: HTMLElement, onSelect: (id: string) => void }} parts */
  constructor({ list, empty, summary, onSelect }) {
    this.list = list;
    this.empty = empty;
    this.summary = summary;
    list.addEventListener("click", (event) => {
      const item = event.target.closest(".note-item");
      if (item) onSelect(item.dataset.id);
    });
  }

  render(records, selectedId) {
    const now = Date.now();
    this.list.replaceChildren(...records.map((record) => renderItem(record, record.id === selectedId, now)));
    this.empty.hidden = records.length > 0;
    this.summary.textContent =
      records.length === 0 ? "" : `${records.length} ${records.length === 1 ? "note" : "notes"}, newest first`;
  }
}

function renderItem({ id, data, meta }, selected, now) {
  const title = el("span", "note-title", data.title || "Untitled");
  if (!data.title) title.classList.add("untitled");

  const status = el("span", "sync-badge", syncLabel(meta.syncStatus));
  status.dataset.status = meta.syncStatus;
  const when = el("time", "note-when", formatWhen(meta.updatedAt, now));
  when.dateTime = new Date(meta.updatedAt).toISOString();

  const foot = el("span", "note-foot");
  foot.append(when, status);

  const button = el("button", "note-item");
  button.type = "button";
  button.dataset.id = id;
  button.setAttribute("aria-current", String(selected));
  button.append(title, el("span", "note-snippet", snippet(data.body)), foot);

  const item = el("li");
  item.append(button);
  return item;
}

function snippet(body) {
  const text = (body ?? "").replace(/\s+/g, " ").trim();
  return text || "No text";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
