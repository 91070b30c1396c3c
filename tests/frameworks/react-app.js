// The React app the React tests drive (bundled by esbuild with React's development
// build, so that StrictMode runs every effect twice). `window.app` lets the tests
// mount, unmount and write; every render is counted per component.

import { useQuery, useRecord, useSyncStatus } from "tideway/react";
import { query as queryStore } from "tideway/svelte";
import { createElement as h, StrictMode, startTransition, useLayoutEffect, useState } from "react";
import { flushSync } from "react-dom";
import { createRoot } from "react-dom/client";
import { database } from "./app-common.js";

const renders = {};
const counted = (name) => (renders[name] = (renders[name] ?? 0) + 1);

function NoteList({ notes, id, query }) {
  const records = useQuery(notes, query);
  counted(id);
  return h("ul", { id }, records.map((record) => h("li", { key: record.id }, record.data.title)));
}

function NoteTitle({ notes, id }) {
  const record = useRecord(notes, id);
  counted("title");
  return h("p", { id: "title" }, record ? record.data.title : "(none)");
}

function Pending({ db }) {
  const status = useSyncStatus(db);
  counted("pending");
  return h("p", { id: "pending" }, String(status.pending));
}

/** Renders slowly, so that a concurrent render yields to the browser between items. */
function SlowItem({ title }) {
  const until = performance.now() + 3;
  while (performance.now() < until);
  return h("li", null, title);
}

const items = (id) => [...document.querySelectorAll(`#${id} li`)].map((li) => li.textContent);

/** Both lists as the DOM shows them after each commit that touched either, before the browser paints. */
const commits = [];

function SlowList({ notes, id, prefix }) {
  const records = useQuery(notes, { index: "title", gte: prefix, lt: `${prefix}\uffff` });
  useLayoutEffect(() => {
    commits.push([items("slow-a").join(), items("slow-b").join()]);
  });
  return h("ul", { id }, records.map((record) => h(SlowItem, { key: record.id, title: record.data.title })));
}

let setPrefix = null;
function Filtered({ notes }) {
  const [prefix, set] = useState("a");
  setPrefix = set;
  return h("div", null, h(SlowList, { notes, id: "slow-a", prefix }), h(SlowList, { notes, id: "slow-b", prefix }));
}

let root = null;

window.app = {
  ...database,
  renders,
  mount(view) {
    const { notes, db } = this;
    const views = {
      lists: () => [
        h(NoteList, { key: "l", notes, id: "list", query: { index: "title" } }),
        h(NoteTitle, { key: "t", notes, id: "n1" }),
        h(Pending, { key: "p", db }),
      ],
      concurrent: () => [h(Filtered, { key: "f", notes })],
    };
    root = createRoot(document.getElementById("root"));
    flushSync(() => root.render(h(StrictMode, null, ...views[view]())));
  },
  unmount() {
    root.unmount();
    root = null;
  },
  items,
  commits,
  filterTo(prefix) {
    startTransition(() => setPrefix(prefix));
  },
  svelteContract(query) {
    const seen = [];
    const stop = queryStore(this.notes, query).subscribe((records) => seen.push(records.map((r) => r.data.title)));
    return { seen, stop };
  },
};
document.documentElement.dataset.ready = "true";
