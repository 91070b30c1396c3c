// Every public call of the package as an app writes it, compiled by tsc (strict) in
// the test suite; the `@ts-expect-error` lines are mistakes the types must catch.

import init, { collection, Tideway, type EntityRecord, type SyncStatusReport, type TidewayError } from "tideway";
import { syncInServiceWorker } from "tideway/service-worker";
import { useQuery, useRecord, useSyncStatus } from "tideway/react";
import { query as queryStore, record as recordStore, syncStatus } from "tideway/svelte";
import { useQuery as useVueQuery, useRecord as useVueRecord, useSyncStatus as useVueSyncStatus } from "tideway/vue";
import { ref } from "vue";

type Note = { title: string; body?: string; tags?: string[]; author?: { name: string } };
type Tag = { label: string };

/** A schema declared once, typing the database that components receive. */
const schema = { notes: collection<Note>()({ indexes: ["title", "updatedAt"] }) };
type NotesDb = Tideway<typeof schema>;

export async function everyCall(): Promise<void> {
  await init();
  await init({ module_or_path: new URL("/assets/tideway_bg.wasm", location.href) });

  const db = await Tideway.open({
    name: "types",
    collections: {
      notes: collection<Note>()({ indexes: ["title", "updatedAt", "author.name"], conflict: "merge" }),
      tags: collection<Tag>()(),
      loose: { indexes: ["anything.at.all"], conflict: (local, server) => server ?? local ?? {} },
    },
    sync: { url: "https://example.com", getToken: async ({ refresh }) => (refresh ? "new" : "old"), interval: 0, log: (entry) => entry.step },
    persist: true,
  });
  const name: string = db.name;
  const fromSchema: NotesDb = await Tideway.open({ name: "types-schema", collections: schema });
  fromSchema.collection("notes").query({ index: "updatedAt" });
  const clientId: string = db.clientId;
  const notes = db.collection("notes");
  const tags = db.collection("tags");
  const loose = db.collection("loose");

  const put: EntityRecord<Note> = await notes.put({ title: "hello", tags: ["a"] }, { id: "n1" });
  const title: string = put.data.title;
  const got = notes.get("n1", { includeDeleted: true });
  const maybeTitle: string | undefined = got?.data.title;
  const all: EntityRecord<Note>[] = notes.all();
  const byTitle = notes.query({ index: "title", gte: "a", lt: "b", limit: 10, offset: 0, reverse: true, includeDeleted: false });
  const byId = notes.query({ gt: "n0" });
  await notes.bulkPut([{ data: { title: "one" } }, { id: "n3", data: { title: "two", body: "b" } }]);
  await notes.patch("n1", { body: null, title: "patched" });
  await notes.delete("n1");
  const stopChanges: () => void = notes.subscribe((changes) => changes.map((change) => change.record?.data.title ?? change.origin));
  const conflicts = notes.conflicts().map((conflict) => conflict.local?.title ?? conflict.server?.title ?? conflict.serverVersion);
  await notes.resolve("n1", { title: "settled" });
  await notes.resolve("n1", null);
  const stopWatch = notes.watch({ index: "updatedAt", reverse: true, limit: 20 }, (records: readonly EntityRecord<Note>[]) =>
    records.map((record) => record.data.title),
  );
  const stopAll = notes.watch(undefined, (records) => records.length);
  const stopRecord = notes.watchRecord("n1", (record: EntityRecord<Note> | undefined) => record?.meta.syncStatus);
  stopChanges();
  stopWatch();
  stopAll();
  stopRecord();

  await tags.put({ label: "x" });
  await loose.put({ whatever: [1, "two", { three: null }] });
  loose.query({ index: "anything.at.all" });
  // A collection typed by the caller keeps working.
  const typed = db.collection<Note>("loose");
  await typed.put({ title: "typed by the caller" });

  const pending: number = await db.pendingCount();
  const storage = await db.storage();
  const usage: number | null = storage.usage;
  const report = await db.sync();
  const pushed: number = report.pushed + report.pulled + report.merged + report.conflicted + report.failed;
  const status: SyncStatusReport = db.status();
  const here: boolean | undefined = status.syncer?.here;
  const offs = [
    db.on("status", (detail) => detail.online),
    db.on("change", (changes) => changes.length),
    db.on("conflict", ({ collection, id }) => collection + id),
    db.on("error", ({ message }) => message),
    db.on("log", (entry) => entry.at),
    db.on("versionchange", ({ reason, committed }) => reason + committed),
  ];
  offs.forEach((off) => off());
  await db.close();
  await Tideway.deleteDatabase("types");

  try {
    await notes.put({ title: "after close" });
  } catch (error) {
    const code: TidewayError["code"] = (error as TidewayError).code;
    void code;
  }

  const worker = syncInServiceWorker({ open: { name: "types", collections: { notes: {} }, sync: { url: "/" } } });
  const workerDb: Tideway = await worker.database();
  await worker.sync();

  const svelteNotes = queryStore(notes, { index: "title" });
  const unsubscribe = svelteNotes.subscribe((records) => records[0]?.data.title);
  unsubscribe();
  recordStore(notes, "n1").subscribe((record) => record?.data.body);
  syncStatus(db).subscribe((report) => report.pending);

  void [name, clientId, title, maybeTitle, all, byTitle, byId, conflicts, pending, usage, pushed, here, workerDb];
}

/** The hooks' types, as a component calls them. */
export function NoteList(db: NotesDb): string[] {
  const notes = db.collection("notes");
  const records: readonly EntityRecord<Note>[] = useQuery(notes, { index: "title" });
  const one: EntityRecord<Note> | undefined = useRecord(notes, "n1");
  const status: SyncStatusReport = useSyncStatus(db);
  // @ts-expect-error: "body" is a field of Note, but not a declared index
  useQuery(notes, { index: "body" });
  return [...records.map((record) => record.data.title), one?.data.title ?? "", String(status.pending)];
}

/** The Vue composables' types, as a component's setup calls them. */
export function vueSetup(db: NotesDb): string {
  const notes = db.collection("notes");
  const prefix = ref("a");
  const records = useVueQuery(notes, () => ({ index: "title", gte: prefix.value }));
  const plain = useVueQuery(notes);
  const one = useVueRecord(notes, prefix);
  const status = useVueSyncStatus(db);
  // @ts-expect-error: the composables check the index too
  useVueQuery(notes, { index: "body" });
  return records.value.map((record) => record.data.title).join() + plain.value.length + one.value?.data.title + status.value.pending;
}

/** Mistakes the types catch. */
export async function mistakes(): Promise<void> {
  const db = await Tideway.open({
    name: "mistakes",
    collections: { notes: collection<Note>()({ indexes: ["title"] }) },
  });
  // @ts-expect-error: no collection of that name was declared
  db.collection("nots");
  const notes = db.collection("notes");
  // @ts-expect-error: the title is a string
  await notes.put({ title: 42 });
  // @ts-expect-error: Note has no such field
  await notes.put({ title: "x", color: "red" });
  // @ts-expect-error: the title is required
  await notes.put({ body: "no title" });
  // @ts-expect-error: patch fields must be Note's
  await notes.patch("n1", { color: "red" });
  // @ts-expect-error: "body" is not a declared index
  notes.query({ index: "body" });
  // @ts-expect-error: nor here
  notes.watch({ index: "author.name" }, () => undefined);
  // @ts-expect-error: a watch callback receives records of Note
  notes.watch(undefined, (records: readonly EntityRecord<Tag>[]) => records);
  // @ts-expect-error: watchRecord takes an id
  notes.watchRecord({ id: "n1" }, () => undefined);
  // @ts-expect-error: useQuery checks the index too
  useQuery(notes, { index: "updatedAt" });
  // @ts-expect-error: no such event
  db.on("changes", () => undefined);

  await Tideway.open({
    name: "mistakes",
    // @ts-expect-error: an index must be metadata or a path into Note
    collections: { notes: collection<Note>()({ indexes: ["colour"] }) },
  });
  // @ts-expect-error: a name is required
  await Tideway.open({ collections: {} });
}
