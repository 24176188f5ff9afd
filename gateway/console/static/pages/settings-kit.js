// Shared pieces of the Settings page (pages/settings*.js) and the Inventory page: an area's
// stylesheet linked once (the CSP refuses inline styles); a settings section that reads its
// setting; form fields the frame's Field does not cover (checkbox, select, textarea, a
// write-only secret), bound to useForm like Field: the API's problem of a field shows next to it.
import { html, useEffect, useId, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { Alert, ErrorAlert, Loading } from "../components/feedback.js";

/** Links `pages/<name>.css` once (console.css stays the frame's). */
export function areaStylesheet(name) {
  if (typeof document === "undefined" || document.querySelector(`link[data-area="${name}"]`)) return;
  const sheet = document.createElement("link");
  sheet.rel = "stylesheet";
  sheet.href = new URL(`./${name}.css`, import.meta.url).href;
  sheet.dataset.area = name;
  document.head.appendChild(sheet);
}

function described(id, hint, error) {
  return [hint ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean).join(" ") || undefined;
}

function Below({ id, hint, error }) {
  return html`${hint ? html`<div class="hint" id=${`${id}-hint`}>${hint}</div>` : null}
    ${error ? html`<div class="field-error" id=${`${id}-error`}>${error}</div>` : null}`;
}

/** A checkbox bound to form.values[name] (a boolean). */
export function CheckField({ form, name, label, hint }) {
  const id = `f-${name}-${useId()}`;
  form.fields.add(name);
  const error = form.errors[name];
  return html`<div class=${`field check-field${error ? " has-error" : ""}`}>
    <input id=${id} name=${name} type="checkbox" checked=${Boolean(form.values[name])}
      aria-invalid=${error ? "true" : undefined} aria-describedby=${described(id, hint, error)}
      onChange=${(event) => form.set(name, event.currentTarget.checked)} />
    <label for=${id}>${label}</label>
    <${Below} id=${id} hint=${hint} error=${error} />
  </div>`;
}

/** A <select> bound to form.values[name]; `options` are [value, label] pairs. */
export function SelectField({ form, name, label, hint, options }) {
  const id = `f-${name}-${useId()}`;
  form.fields.add(name);
  const error = form.errors[name];
  return html`<div class=${`field${error ? " has-error" : ""}`}>
    <label for=${id}>${label}</label>
    <select id=${id} name=${name} value=${form.values[name] ?? ""}
      aria-invalid=${error ? "true" : undefined} aria-describedby=${described(id, hint, error)}
      onChange=${(event) => form.set(name, event.currentTarget.value)}>
      ${options.map(([value, text]) => html`<option value=${value} key=${value}>${text}</option>`)}
    </select>
    <${Below} id=${id} hint=${hint} error=${error} />
  </div>`;
}

/** A <textarea> bound to form.values[name]. */
export function TextareaField({ form, name, label, hint, rows = 4, placeholder }) {
  const id = `f-${name}-${useId()}`;
  form.fields.add(name);
  const error = form.errors[name];
  return html`<div class=${`field${error ? " has-error" : ""}`}>
    <label for=${id}>${label}</label>
    <textarea id=${id} name=${name} rows=${rows} placeholder=${placeholder} value=${form.values[name] ?? ""}
      aria-invalid=${error ? "true" : undefined} aria-describedby=${described(id, hint, error)}
      onInput=${(event) => form.set(name, event.currentTarget.value)}></textarea>
    <${Below} id=${id} hint=${hint} error=${error} />
  </div>`;
}

/** A write-only secret: the API only says whether one is stored (`isSet`), never what it is. The
 * field starts empty whatever is stored; empty means "keep the stored one". */
export function SecretField({ form, name, label, isSet, hint }) {
  const id = `f-${name}-${useId()}`;
  form.fields.add(name);
  const error = form.errors[name];
  const state = isSet ? "set" : "not set";
  const words = isSet ? "Leave empty to keep the stored one; type a new one to replace it." : hint;
  return html`<div class=${`field${error ? " has-error" : ""}`}>
    <label for=${id}>${label} <span class=${`badge secret-state ${isSet ? "is-set" : "not-set"}`}>${state}</span></label>
    <input id=${id} name=${name} type="password" autocomplete="new-password" value=${form.values[name] ?? ""}
      placeholder=${isSet ? "•••••••• (stored, not shown)" : ""}
      aria-invalid=${error ? "true" : undefined} aria-describedby=${described(id, words, error)}
      onInput=${(event) => form.set(name, event.currentTarget.value)} />
    <${Below} id=${id} hint=${words} error=${error} />
  </div>`;
}

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

