// The status pills in the top bar: network, outbox and offline readiness. Each fact has
// one setter; a sync engine adds its own (syncing, last sync) beside them.

const PLURAL = new Intl.PluralRules("en");

export class StatusBar {
  constructor(root) {
    this.network = root.querySelector('[data-field="network"]');
    this.pending = root.querySelector('[data-field="pending"]');
    this.offlineReady = root.querySelector('[data-field="offline-ready"]');
    const update = () => this.setOnline(navigator.onLine);
    addEventListener("online", update);
    addEventListener("offline", update);
    update();
  }

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

  /** The service worker holds everything the app needs to start without a network. */
  setOfflineReady(ready) {
    this.offlineReady.hidden = !ready;
  }
}
