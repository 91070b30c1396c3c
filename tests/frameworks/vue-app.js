// The Vue app the Vue tests drive (Vue's bundler build, bundled by esbuild):
// `window.app` mounts and unmounts it, writes, and changes the watched prefix.

import { useQuery, useRecord, useSyncStatus } from "tideway/vue";
import { createApp, h, ref } from "vue";
import { database } from "./app-common.js";

const renders = { list: 0, title: 0 };
const prefix = ref("a");

const NoteList = {
  props: ["notes"],
  setup(props) {
    const records = useQuery(props.notes, () => ({ index: "title", gte: prefix.value, lt: `${prefix.value}\uffff` }));
    return () => {
      renders.list++;
      return h("ul", { id: "list" }, records.value.map((record) => h("li", { key: record.id }, record.data.title)));
    };
  },
};

const NoteTitle = {
  props: ["notes"],
  setup(props) {
    const record = useRecord(props.notes, "n1");
    return () => {
      renders.title++;
      return h("p", { id: "title" }, record.value ? record.value.data.title : "(none)");
    };
  },
};

const Pending = {
  props: ["db"],
  setup(props) {
    const status = useSyncStatus(props.db);
    return () => h("p", { id: "pending" }, String(status.value.pending));
  },
};

let mounted = null;

window.app = {
  ...database,
  renders,
  mount() {
    const { notes, db } = this;
    mounted = createApp({ render: () => [h(NoteList, { notes }), h(NoteTitle, { notes }), h(Pending, { db })] });
    mounted.mount("#root");
  },
  unmount() {
    mounted.unmount();
  },
  setPrefix(value) {
    prefix.value = value;
  },
  items: (id) => [...document.querySelectorAll(`#${id} li`)].map((li) => li.textContent),
};
document.documentElement.dataset.ready = "true";
