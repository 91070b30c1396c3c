// <tideway-inspector>: one Tideway database at a glance, for a debug screen. It shows
// the sync status and which context syncs, each collection and its counts, the outbox
// mutation by mutation, the conflicts waiting for a decision (both sides, and buttons
// that resolve them) and the recent entries of the sync log. No framework; it reads
// only the public API, so what it shows is what an app can see.
//
//   import "tideway/inspector";
//   const inspector = document.createElement("tideway-inspector");
//   inspector.db = db;                      // or <tideway-inspector db="app.db">, a path from globalThis
//   document.body.append(inspector);
//
// It listens to the database only while it is in the document, and draws nothing while
// `hidden`; log entries are kept (the latest `log-size`, 200 by default) in both cases.

const STYLE = `
:host { display: block; font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  color: var(--tideway-inspector-text, CanvasText); background: var(--tideway-inspector-bg, Canvas);
  border: 1px solid var(--tideway-inspector-border, #8886); border-radius: 8px; padding: 0.75rem; }
:host([hidden]) { display: none; }
h2 { font-size: 12px; margin: 1rem 0 0.35rem; text-transform: uppercase; letter-spacing: 0.05em; opacity: 0.75; }
header h2 { margin-top: 0; }
header { display: flex; align-items: center; justify-content: space-between; gap: 0.5rem; flex-wrap: wrap; }
button { font: inherit; padding: 0.15rem 0.6rem; border-radius: 5px; border: 1px solid #8888; background: transparent;
  color: inherit; cursor: pointer; }
button:hover { background: #8882; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.1rem 0.9rem; margin: 0; }
dt { opacity: 0.7; }
dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.15rem 0.5rem 0.15rem 0; vertical-align: top; overflow-wrap: anywhere; }
th { font-weight: normal; opacity: 0.7; border-bottom: 1px solid #8884; }
.empty { opacity: 0.7; margin: 0; }
.error { color: #c33; }
.conflict { border: 1px solid #d906; border-radius: 6px; padding: 0.4rem 0.5rem; margin-bottom: 0.5rem; }
.sides { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 0.5rem; margin: 0.35rem 0; }
.sides pre { margin: 0.15rem 0 0; white-space: pre-wrap; overflow-wrap: anywhere; background: #8881; padding: 0.3rem;
  border-radius: 4px; }
.actions { display: flex; gap: 0.5rem; }
ol { list-style: none; margin: 0; padding: 0; max-height: 18rem; overflow: auto; }
li { padding: 0.1rem 0; border-bottom: 1px solid #8882; }
.step { font-weight: bold; }
.at { opacity: 0.6; margin-right: 0.5rem; }
`;

const DEFAULT_LOG_SIZE = 200;

export class TidewayInspector extends HTMLElement {
  static observedAttributes = ["db", "hidden"];

  #db = null;
  #listening = [];
  #log = [];
  #drawQueued = false;
  /** Each outbox read gets a number: only the answer to the latest one is drawn. */
  #outboxRead = 0;
  #outbox = null;
  #outboxStale = true;
  #actionError = "";

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
  }

  /** The database shown (a `Tideway`), or `null`. */
  get db() {
    return this.#db;
  }

  set db(db) {
    if (db === this.#db) return;
    this.#stopListening();
    this.#db = db ?? null;
    this.#log = [];
    this.#outbox = null;
    if (this.isConnected) this.#listen();
    this.refresh();
  }

  /** The latest sync log entries this element heard, oldest first. */
  get log() {
    return [...this.#log];
  }

  /** Reads everything again and redraws (the element does so by itself on every event). */
  refresh() {
    this.#outboxStale = true;
    this.#queueDraw();
  }

  connectedCallback() {
    if (this.hasAttribute("db") && !this.#db) this.db = fromGlobal(this.getAttribute("db"));
    this.#listen();
    this.refresh();
  }

  disconnectedCallback() {
    this.#stopListening();
  }

  attributeChangedCallback(name, before, now) {
    if (name === "db" && now !== before && this.isConnected) this.db = fromGlobal(now);
    if (name === "hidden" && now === null) this.refresh();
  }

  get #logSize() {
    const size = Number(this.getAttribute("log-size"));
    return Number.isInteger(size) && size > 0 ? size : DEFAULT_LOG_SIZE;
  }

  #listen() {
    const db = this.#db;
    if (!db || this.#listening.length > 0) return;
    try {
      this.#listening = [
        db.on("status", () => this.refresh()),
        db.on("change", () => this.refresh()),
        db.on("conflict", () => this.#queueDraw()),
        db.on("log", (entry) => {
          this.#log.push(entry);
          if (this.#log.length > this.#logSize) this.#log.splice(0, this.#log.length - this.#logSize);
          this.#queueDraw();
        }),
      ];
    } catch (error) {
      // A closed database: drawn as such.
      this.#actionError = describe(error);
    }
  }

  #stopListening() {
    for (const unsubscribe of this.#listening) unsubscribe();
    this.#listening = [];
  }

  #readOutbox() {
    const db = this.#db;
    if (!db) return;
    const read = ++this.#outboxRead;
    db.outbox().then(
      (entries) => {
        if (read !== this.#outboxRead) return;
        this.#outbox = entries;
        this.#queueDraw();
      },
      (error) => {
        if (read !== this.#outboxRead) return;
        this.#outbox = error;
        this.#queueDraw();
      },
    );
  }

  /** Events come in bursts (a pull page, a bulk write): one outbox read and one draw per burst. */
  #queueDraw() {
    if (this.#drawQueued) return;
    this.#drawQueued = true;
    setTimeout(() => {
      this.#drawQueued = false;
      if (!this.isConnected || this.hidden) return;
      if (this.#outboxStale) {
        this.#outboxStale = false;
        this.#readOutbox();
      }
      this.#draw();
    }, 16);
  }

  #draw() {
    const db = this.#db;
    const root = this.shadowRoot;
    if (!db) {
      root.replaceChildren(h("style", {}, STYLE), h("p", { class: "empty" }, "No database: set the element's db property."));
      return;
    }
    let status;
    let collections;
    try {
      status = db.status();
      collections = db.collections();
    } catch (error) {
      root.replaceChildren(h("style", {}, STYLE), h("p", { class: "error" }, describe(error)));
      return;
    }
    // Scrolling through the log survives a redraw.
    const logScroll = root.querySelector("ol")?.scrollTop ?? 0;
    root.replaceChildren(
      h("style", {}, STYLE),
      this.#drawStatus(db, status),
      h("h2", {}, "Collections"),
      drawCollections(collections),
      h("h2", {}, "Outbox"),
      drawOutbox(this.#outbox),
      h("h2", {}, "Conflicts"),
      this.#drawConflicts(db, collections),
      h("h2", {}, "Sync log"),
      drawLog(this.#log),
    );
    const log = root.querySelector("ol");
    if (log) log.scrollTop = logScroll;
  }

  #drawStatus(db, status) {
    const syncer = status.syncer
      ? `${status.syncer.context}${status.syncer.here ? " (this one)" : ""}`
      : "none known (opened without sync, or not said yet)";
    const counters = Object.entries(status.counters ?? {})
      .map(([name, value]) => `${name} ${value}`)
      .join(" · ");
    const sync = h("button", { type: "button", "data-action": "sync" }, "Sync now");
    sync.addEventListener("click", () => {
      this.#actionError = "";
      db.sync().then(
        () => this.refresh(),
        (error) => {
          this.#actionError = `sync: ${describe(error)}`;
          this.#queueDraw();
        },
      );
    });
    const fields = [
      ["database", `${db.name} · client ${db.clientId}`],
      ["network", `${status.online ? "online" : "offline"}, server ${reachability(status.reachable)}`],
      ["syncing", status.syncing ? "yes" : "no"],
      ["syncer", syncer],
      ["pending", status.pending],
      ["failed", status.failed],
      ["conflicts", status.conflicts],
      ["last sync", time(status.lastSyncAt)],
      ["last error", status.lastError ?? "none"],
      ["next retry", time(status.nextRetryAt)],
      ["counters", counters],
    ];
    return h(
      "section",
      { "data-section": "status" },
      h("header", {}, h("h2", {}, "Sync status"), sync),
      h("dl", {}, ...fields.flatMap(([name, value]) => [h("dt", {}, name), h("dd", { "data-field": name.replaceAll(" ", "-") }, String(value))])),
      this.#actionError ? h("p", { class: "error", "data-field": "action-error" }, this.#actionError) : "",
    );
  }

  #drawConflicts(db, collections) {
    const waiting = collections
      .filter((collection) => collection.conflicts > 0)
      .flatMap((collection) => db.collection(collection.name).conflicts().map((conflict) => [collection.name, conflict]));
    if (waiting.length === 0) return h("section", { "data-section": "conflicts" }, h("p", { class: "empty" }, "None."));
    const resolve = (collection, id, data, button) => {
      button.disabled = true;
      this.#actionError = "";
      db.collection(collection)
        .resolve(id, data)
        .then(
          () => this.refresh(),
          (error) => {
            this.#actionError = `resolve: ${describe(error)}`;
            this.#queueDraw();
          },
        );
    };
    const items = waiting.map(([collection, conflict]) => {
      const keepLocal = h("button", { type: "button", "data-action": "keep-local" }, "Keep local");
      const takeServer = h("button", { type: "button", "data-action": "take-server" }, "Take server's");
      keepLocal.addEventListener("click", () => resolve(collection, conflict.id, conflict.local, keepLocal));
      takeServer.addEventListener("click", () => resolve(collection, conflict.id, conflict.server, takeServer));
      const side = (name, data) => h("div", { "data-side": name }, name, h("pre", {}, data === null ? "(deleted)" : json(data)));
      return h(
        "article",
        { class: "conflict", "data-collection": collection, "data-id": conflict.id },
        h("div", {}, `${collection} / ${conflict.id} · server version ${conflict.serverVersion}`),
        h("div", { class: "sides" }, side("local", conflict.local), side("server", conflict.server), side("base", conflict.base)),
        h("div", { class: "actions" }, keepLocal, takeServer),
      );
    });
    return h("section", { "data-section": "conflicts" }, ...items);
  }
}

function drawCollections(collections) {
  const columns = ["name", "count", "deleted", "pending", "failed", "conflicts"];
  const rows = collections.map((collection) =>
    h("tr", { "data-collection": collection.name }, ...columns.map((column) => h("td", { "data-field": column }, String(collection[column])))),
  );
  return h(
    "section",
    { "data-section": "collections" },
    h("table", {}, h("thead", {}, h("tr", {}, ...columns.map((column) => h("th", {}, column)))), h("tbody", {}, ...rows)),
  );
}

function drawOutbox(outbox) {
  const section = (...children) => h("section", { "data-section": "outbox" }, ...children);
  if (outbox === null) return section(h("p", { class: "empty" }, "Reading…"));
  if (outbox instanceof Error || !Array.isArray(outbox)) return section(h("p", { class: "error" }, describe(outbox)));
  if (outbox.length === 0) return section(h("p", { class: "empty" }, "Empty: nothing waits to be pushed."));
  const columns = [
    ["#", (entry) => entry.mutationId],
    ["collection", (entry) => entry.collection],
    ["id", (entry) => entry.id],
    ["op", (entry) => entry.op],
    ["attempts", (entry) => entry.attempts],
    ["queued", (entry) => time(entry.createdAt)],
    ["entity", (entry) => entry.syncStatus ?? "?"],
    ["last error", (entry) => entry.lastError ?? ""],
  ];
  const rows = outbox.map((entry) =>
    h(
      "tr",
      { "data-mutation-id": String(entry.mutationId), "data-collection": entry.collection, "data-id": entry.id },
      ...columns.map(([name, value]) => h("td", { "data-field": name.replaceAll(" ", "-") }, String(value(entry)))),
    ),
  );
  return section(
    h("table", {}, h("thead", {}, h("tr", {}, ...columns.map(([name]) => h("th", {}, name)))), h("tbody", {}, ...rows)),
  );
}

function drawLog(log) {
  if (log.length === 0) {
    return h("section", { "data-section": "log" }, h("p", { class: "empty" }, "Nothing yet: entries appear as this context syncs."));
  }
  const items = [...log].reverse().map((entry) => {
    const { step, at, ...fields } = entry;
    const detail = Object.entries(fields)
      .map(([name, value]) => `${name}=${logValue(name, value)}`)
      .join(" ");
    return h("li", { "data-step": step }, h("span", { class: "at" }, time(at)), h("span", { class: "step" }, step), " ", detail);
  });
  return h("section", { "data-section": "log" }, h("ol", {}, ...items));
}

/** A log entry's field as people read it: times as times, delays in whole ms. */
function logValue(name, value) {
  if (typeof value === "object" && value !== null) return json(value, 0);
  if (typeof value !== "number") return value;
  if (name.endsWith("At")) return time(value);
  return Number.isInteger(value) ? value : Math.round(value);
}

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function json(value, indent = 2) {
  return JSON.stringify(value, null, indent);
}

function time(ms) {
  if (ms === null || ms === undefined) return "—";
  const date = new Date(ms);
  return `${date.toLocaleTimeString([], { hour12: false })}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

function reachability(reachable) {
  return reachable === null || reachable === undefined ? "not tried" : reachable ? "reachable" : "unreachable";
}

function describe(error) {
  return error?.code ? `${error.code}: ${error.message}` : String(error?.message ?? error);
}

/** `"app.db"` → `globalThis.app.db`. */
function fromGlobal(path) {
  if (!path) return null;
  return path.split(".").reduce((value, key) => value?.[key], globalThis) ?? null;
}

if (!customElements.get("tideway-inspector")) customElements.define("tideway-inspector", TidewayInspector);
