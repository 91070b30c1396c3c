// The status pills in the top bar: network, outbox, sync and offline readiness. Each fact
// has one setter.

const PLURAL = new Intl.PluralRules("en");

export class StatusBar {
  constructor(root) {
    this.network = root.querySelector('[data-field="network"]');
    this.pending = root.querySelector('[data-field="pending"]');
    this.offlineReady = root.querySelector('[data-field="offline-ready"]');
    this.sync = root.querySelector('[data-field="sync"]');
    this.setOnline(navigator.onLine);
  }

  /** `navigator.onLine`, as the database's status reports it. */
  setOnline(online) {
    this.network.dataset.online = String(online);
    this.network.textContent = online ? "Online" : "Offline — changes stay on this device";
  }

  /** Changes written locally that no server has acknowledged yet. */
  setPending(count) {
    this.pending.dataset.count = String(count);
    this.pending.textContent =
      count === 0
        ? "Nothing waiting to sync"
        : `${count} ${PLURAL.select(count) === "one" ? "change" : "changes"} waiting to sync`;
  }

  /** Where sync with the server stands (`db.status()`). */
  setSync({ syncing, lastSyncAt, lastError, nextRetryAt, failed, conflicts, syncer }) {
    this.sync.hidden = false;
    const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    let state = "idle";
    let text = "Not synced yet";
    if (syncing) [state, text] = ["syncing", "Syncing…"];
    else if (lastError && nextRetryAt) [state, text] = ["failed", `Sync failed, retrying at ${time(nextRetryAt)}`];
    else if (lastSyncAt) [state, text] = ["synced", `Synced at ${time(lastSyncAt)}`];
    const problems = [failed && `${failed} refused`, conflicts && `${conflicts} in conflict`].filter(Boolean);
    this.sync.dataset.state = state;
    // Of all the tabs and workers on this database, one syncs; say which.
    const where = { window: "another tab", worker: "a worker", "service-worker": "the service worker" };
    const by = syncer && (syncer.here ? "this tab" : where[syncer.context] ?? "another tab");
    this.sync.dataset.syncer = syncer ? (syncer.here ? "here" : syncer.context) : "";
    const said = by ? `${text} · by ${by}` : text;
    this.sync.textContent = problems.length ? `${said} (${problems.join(", ")})` : said;
    this.sync.title = lastError ?? "";
  }

  /** The service worker holds everything the app needs to start without a network. */
  setOfflineReady(ready) {
    this.offlineReady.hidden = !ready;
  }
}
