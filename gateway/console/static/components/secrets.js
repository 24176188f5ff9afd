// Secrets shown once (recovery codes, generated passwords): copy and download buttons.
import { html, useState } from "../lib/preact.js";

export function CopyButton({ text, label = "Copy" }) {
  const [done, setDone] = useState(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone("Copied");
    } catch {
      setDone("Select the text and copy it");
    }
  };
  return html`<button type="button" class="button" onClick=${copy}>${label}</button>
    <span class="copy-status" role="status">${done || ""}</span>`;
}

export function DownloadButton({ text, filename, label = "Download" }) {
  const download = () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  };
  return html`<button type="button" class="button" onClick=${download}>${label}</button>`;
}
