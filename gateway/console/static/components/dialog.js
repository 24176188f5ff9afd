// An accessible modal dialog on the native <dialog>: focus moves into it, Escape closes it,
// and focus goes back to what opened it when it closes.
import { html, useEffect, useRef } from "../lib/preact.js";

export function Dialog({ title, open, onClose, children, footer }) {
  const dialog = useRef(null);
  const opener = useRef(null);
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
  return html`<dialog ref=${dialog} class="dialog" aria-labelledby="dialog-title" onClose=${closed}>
    <h2 id="dialog-title">${title}</h2>
    <div class="dialog-body">${children}</div>
    ${footer ? html`<div class="dialog-footer">${footer}</div>` : null}
  </dialog>`;
}
