// Transient messages (toasts) and the screen shown when the app cannot start at all.

let toastTimer;

export function showToast(message, { kind = "info", duration = 3500 } = {}) {
  const toast = document.getElementById("toast");
  toast.textContent = message;
  toast.dataset.kind = kind;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toast.hidden = true), duration);
}

export function showFatal(error) {
  document.getElementById("fatal-message").textContent =
    `${error?.name ?? "Error"}${error?.code ? ` (${error.code})` : ""}: ${error?.message ?? error}`;
  document.getElementById("fatal").hidden = false;
}
