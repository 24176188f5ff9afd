// Shared pieces of the user administration pages (pages/users*.js): the API calls they
// make, field errors from the API's `details`, dialogs, the copy-once secret box and dates.
// Everything goes through the frame's API client: the public REST API, nothing else.
import { html, useEffect, useRef, useState } from "../lib/preact.js";
import { api } from "../lib/api.js";

export { html, useEffect, useRef, useState, api };

// --- calls --------------------------------------------------------------------------------

/** GET that also answers the ETag (users are versioned: edits send it back as If-Match). */
export async function getWithEtag(path) {
  const answer = await api.raw("GET", path);
  return { body: answer.body, etag: answer.headers.get("ETag") };
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// --- errors -------------------------------------------------------------------------------

/** The API's `details` as {field: words}: `{"json": {"email": ["..."]}}` (the gateway's schema)
 *  and `{"email": "..."}` (a service) both become {email: "..."}. */
export function fieldErrors(error) {
  const details = (error && error.details) || {};
  const out = {};
  const put = (field, problem) => {
    if (problem === null || problem === undefined) return;
    if (Array.isArray(problem)) problem = problem.join(" ");
    else if (typeof problem === "object") problem = Object.values(problem).flat().join(" ");
    out[field] = String(problem);
  };
  for (const [key, value] of Object.entries(details)) {
    if ((key === "json" || key === "query") && value && typeof value === "object" && !Array.isArray(value)) {
      for (const [field, problem] of Object.entries(value)) put(field, problem);
    } else {
      put(key, value);
    }
  }
  return out;
}

/** Words for an error that names no field of the form (or all of it). */
export function errorWords(error) {
  if (!error) return "";
  if (error.status === 429) {
    const retry = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    return `${error.message || "Too many requests."}${retry}`;
  }
  return error.message || String(error);
}

/** A form's error box: the message, and the `details` the form has no field for. */
export function FormError({ error, fields = [] }) {
  if (!error) return null;
  const details = fieldErrors(error);
  const others = Object.entries(details).filter(([field]) => !fields.includes(field));
  return html`<div class="form-error" role="alert">
    <p>${errorWords(error)}</p>
    ${others.length > 0 && html`<ul>${others.map(([field, problem]) => html`<li><b>${field}</b>: ${problem}</li>`)}</ul>`}
  </div>`;
}

let fieldCount = 0;

/** A labelled input whose API error shows next to it; the value lives in the caller's state. */
export function Field({ label, name, value, onInput, error, type = "text", disabled, hint, required, autocomplete,
                        children, multiline }) {
  const id = useRef(`f-${name}-${++fieldCount}`).current;
  const problem = error && fieldErrors(error)[name];
  const described = [problem && `${id}-error`, hint && `${id}-hint`].filter(Boolean).join(" ") || undefined;
  const common = { id, name, disabled, required, "aria-invalid": problem ? "true" : undefined,
                   "aria-describedby": described, autocomplete };
  let control;
  if (children) {
    control = html`<select ...${common} value=${value} onChange=${(e) => onInput(e.target.value)}>${children}</select>`;
  } else if (multiline) {
    control = html`<textarea ...${common} rows="4" value=${value} onInput=${(e) => onInput(e.target.value)}></textarea>`;
  } else {
    control = html`<input ...${common} type=${type} value=${value} onInput=${(e) => onInput(e.target.value)} />`;
  }
  return html`<div class=${`field${problem ? " invalid" : ""}`}>
    <label for=${id}>${label}</label>
    ${control}
    ${hint && html`<small id=${`${id}-hint`} class="hint">${hint}</small>`}
    ${problem && html`<small id=${`${id}-error`} class="field-error">${problem}</small>`}
  </div>`;
}

// --- dialogs ------------------------------------------------------------------------------

/** A modal <dialog>: focus moves into it and back to what opened it; Escape closes. */
export function Dialog({ title, onClose, children, wide }) {
  const ref = useRef(null);
  useEffect(() => {
    const opener = document.activeElement;
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    const first = dialog && dialog.querySelector("input:not([disabled]), select, textarea, button.primary, button");
    if (first) first.focus();
    return () => { if (opener && opener.focus) opener.focus(); };
  }, []);
  return html`<dialog ref=${ref} class=${`dialog${wide ? " wide" : ""}`} aria-labelledby="dialog-title"
      onCancel=${(e) => { e.preventDefault(); onClose(); }}>
    <header><h2 id="dialog-title">${title}</h2>
      <button type="button" class="close" aria-label="Close" onClick=${onClose}>×</button></header>
    <div class="dialog-body">${children}</div>
  </dialog>`;
}

/** A secret shown this once (a generated password): selectable text and a copy button. */
export function SecretOnce({ label, value }) {
  const [copied, setCopied] = useState(false);
  const input = useRef(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      input.current.select();  // http on another host than localhost: no clipboard API
      document.execCommand("copy");
    }
    setCopied(true);
  };
  return html`<div class="secret-once">
    <label for="secret-once">${label}</label>
    <div class="secret-row">
      <input id="secret-once" ref=${input} readonly value=${value} data-secret="generated-password"
             onFocus=${(e) => e.target.select()} />
      <button type="button" onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
    </div>
    <p class="hint">Shown this once: Gatehouse keeps only its hash. Give it to the user by a safe way;
      they must change it when they first sign in.</p>
  </div>`;
}

// --- formatting ---------------------------------------------------------------------------

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function fullName(user) {
  return user.full_name || [user.first_name, user.last_name].filter(Boolean).join(" ") || "—";
}

export const STATUS_WORDS = { pending: "Pending", active: "Active", suspended: "Suspended", invited: "Invited" };

export function StatusBadge({ status }) {
  return html`<span class=${`badge status-${status}`}>${STATUS_WORDS[status] || status}</span>`;
}

export function twoFactorWords(user) {
  if (user.totp_enrolled) return user.totp_required || user.totp_required_by_policy ? "On (required)" : "On";
  if (user.totp_enrollment_required || user.totp_required || user.totp_required_by_policy) return "Required, not enrolled";
  return "Off";
}

/** Built-in roles, offered when the caller may not read the role list (it needs admin.rbac). */
export const BUILTIN_ROLES = ["viewer", "operator", "admin", "super_admin"];

/** The roles the caller may pick from: GET /api/v1/roles when allowed, else the built-in ones. */
export function useRoles() {
  const [roles, setRoles] = useState(BUILTIN_ROLES);
  useEffect(() => {
    let live = true;
    api.get("/api/v1/roles").then(
      (page) => { if (live) setRoles(page.items.map((role) => role.name)); },
      () => {},  // no admin.rbac: the built-in names
    );
    return () => { live = false; };
  }, []);
  return roles;
}

/** LDAP groups (cn) to offer; null when the caller may not read them (admin.rbac). */
export function useGroups() {
  const [groups, setGroups] = useState(null);
  useEffect(() => {
    let live = true;
    api.get("/api/v1/groups?limit=200").then(
      (page) => { if (live) setGroups(page.items); },
      () => { if (live) setGroups(null); },
    );
    return () => { live = false; };
  }, []);
  return groups;
}
