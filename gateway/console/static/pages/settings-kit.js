// Shared pieces of the Settings page (pages/settings*.js) and the Inventory page: a settings
// section that reads its setting, whole numbers, "Saved."; the form fields (checkbox, select,
// textarea, write-only secret, from components/form.js) and areaStylesheet are re-exported.
import { html, useEffect, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { Alert, ErrorAlert, Loading } from "../components/feedback.js";
// The fields and the stylesheet loader live in components/ (shared by every area); re-exported here.
export { CheckField, SecretField, SelectField, TextareaField } from "../components/form.js";
export { areaStylesheet } from "../components/stylesheet.js";

/** A whole number typed into a form, or a local error naming the field (the API would refuse it too). */
export function wholeNumber(values, name) {
  const text = String(values[name] ?? "").trim();
  if (!/^-?\d+$/.test(text)) {
    throw Object.assign(new Error("Check the highlighted fields."), { fields: { [name]: "must be a whole number" } });
  }
  return Number(text);
}

/** A section: its heading, what it read (or why it could not), its form. */
export function Section({ id, title, intro, loaded, error, children }) {
  return html`<section class="settings-section" id=${id} aria-labelledby=${`${id}-title`}>
    <h2 id=${`${id}-title`}>${title}</h2>
    ${intro ? html`<p class="hint">${intro}</p>` : null}
    ${error ? html`<${ErrorAlert} error=${error} />` : loaded ? children : html`<${Loading} label=${`Loading ${title.toLowerCase()}…`} />`}
  </section>`;
}

/** Reads `path` once: [data, error, set data]. */
export function useSetting(path) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api.get(path).then((answer) => setData(answer.data), setError);
  }, [path]);
  return [data, error, setData];
}

/** "Saved." after a save, announced; gone on the next change. */
export function Saved({ text }) {
  return text ? html`<${Alert} kind="info">${text}<//>` : null;
}

