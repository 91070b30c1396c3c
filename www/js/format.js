// Small display helpers shared by the list and the editor.

const RELATIVE = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const ABSOLUTE = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" });

/** "just now", "5 minutes ago", then a date for anything older than a week. */
export function formatWhen(ms, now = Date.now()) {
  const seconds = Math.round((ms - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  if (abs < 3600) return RELATIVE.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return RELATIVE.format(Math.round(seconds / 3600), "hour");
  if (abs < 7 * 86400) return RELATIVE.format(Math.round(seconds / 86400), "day");
  return ABSOLUTE.format(ms);
}

const SYNC_LABELS = {
  dirty: "Saved on device",
  syncing: "Syncing…",
  synced: "Synced",
  failed: "Sync failed",
  conflict: "Conflict",
};

/** A short label for `meta.syncStatus`. */
export function syncLabel(status) {
  return SYNC_LABELS[status] ?? status;
}
