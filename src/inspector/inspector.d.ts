import type { SyncLogEntry, Tideway } from "./tideway.js";

/**
 * `<tideway-inspector>`: one database at a glance (sync status and syncing context,
 * collections and counts, the outbox, conflicts with both sides and resolve buttons,
 * recent sync log entries). Importing `tideway/inspector` defines the element.
 *
 * Show a database with `element.db = db`, or `<tideway-inspector db="app.db">` (a dotted
 * path from `globalThis`, read when the element is connected). `log-size` sets how many
 * log entries it keeps (200 by default).
 */
export class TidewayInspector extends HTMLElement {
  /** The database shown, or `null`. */
  db: Tideway | null;
  /** The latest sync log entries this element heard, oldest first. */
  readonly log: SyncLogEntry[];
  /** Reads everything again and redraws (it does so by itself on every event). */
  refresh(): void;
}

declare global {
  interface HTMLElementTagNameMap {
    "tideway-inspector": TidewayInspector;
  }
}
