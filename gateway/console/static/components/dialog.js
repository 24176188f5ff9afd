// An accessible modal dialog on the native <dialog>: focus moves into it, Escape closes it,
// and focus goes back to what opened it when it closes.
import { html, useEffect, useId, useRef, useState } from "../lib/preact.js";
import { ErrorAlert } from "./feedback.js";

export function Dialog({ title, open, onClose, children, footer }) {
  const dialog = useRef(null);
  const opener = useRef(null);
  const titleId = `dialog-${useId()}`;
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (open && !element.open) {
      opener.current = document.activeElement;
      element.showModal();
    } else if (!open && element.open) {
      element.close();
    }
  }, [open]);
  useEffect(() => () => {
    if (opener.current && opener.current.focus) opener.current.focus();
  }, []);
  const closed = () => {
    if (opener.current && opener.current.focus) opener.current.focus();
    if (onClose) onClose();
  };
  return html`<dialog ref=${dialog} class="dialog" aria-labelledby=${titleId} onClose=${closed}>
    <h2 id=${titleId}>${title}</h2>
    <div class="dialog-body">${children}</div>
    ${footer ? html`<div class="dialog-footer">${footer}</div>` : null}
  </dialog>`;
}

/** A yes/no question in a Dialog: `onConfirm` may be async (the button shows progress; an error
 * is shown in the dialog and it stays open). */
export function ConfirmDialog({ open, title, children, confirmLabel = "Confirm", busyLabel = "Working…", danger = false, onConfirm, onClose }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} open=${open} title=${title} onClose=${onClose} footer=${html`
    <button type="button" class="button" onClick=${onClose} disabled=${busy}>Cancel</button>
    <button type="button" class=${`button ${danger ? "danger" : "primary"}`} onClick=${confirm} disabled=${busy} aria-busy=${busy ? "true" : undefined}>
      ${busy ? busyLabel : confirmLabel}</button>`}>
    ${children}
    <${ErrorAlert} error=${error} />
  <//>`;
}
