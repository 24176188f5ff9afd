// Forms that never lose what the user typed and show every API error next to the field it
// names. Usage:
//   const form = useForm({ login: "", password: "" });
//   const submit = form.submit(async (values) => { await api.post(...); });
//   html`<form onSubmit=${submit} novalidate>
//     <${FormError} form=${form} />
//     <${Field} form=${form} name="login" label="Username or email" autocomplete="username" />
//     <${SubmitButton} form=${form} busyLabel="Signing in…">Sign in<//>
//   </form>`
// An ApiError's `details` fill `form.errors` (field -> sentence); a problem of a field the form
// does not show, or an error without details, goes to the form's message (FormError).
import { html, useEffect, useId, useRef, useState } from "../lib/preact.js";
import { ApiError } from "../api.js";
import { describe } from "./feedback.js";

export function useForm(initial) {
  const [values, setValues] = useState(initial);
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState(null);
  const [busy, setBusy] = useState(false);
  const fields = useRef(new Set());

  const form = {
    values, errors, message, busy, fields: fields.current,
    set(name, value) {
      setValues((old) => ({ ...old, [name]: value }));
    },
    setValues,
    /** Shows an error: its field problems next to the fields, the rest as the form's message. */
    fail(error) {
      if (error instanceof ApiError || (error && error.fields)) {
        const mine = {};
        const others = [];
        for (const [field, text] of Object.entries(error.fields)) {
          if (fields.current.has(field)) mine[field] = text;
          else others.push(`${field.replace(/_/g, " ")}: ${text}`);
        }
        setErrors(mine);
        const shown = Object.keys(mine).length > 0;
        setMessage(shown && others.length === 0 ? "Check the highlighted fields." : [describe(error), ...others].join(" "));
      } else {
        setErrors({});
        setMessage(error && error.message ? error.message : String(error));
      }
    },
    clear() {
      setErrors({});
      setMessage(null);
    },
    /** An onSubmit handler running `action(values)` with progress shown; errors shown, values kept. */
    submit(action) {
      return async (event) => {
        if (event) event.preventDefault();
        if (busy) return;
        const element = event && event.currentTarget;
        setBusy(true);
        setErrors({});
        setMessage(null);
        try {
          await action(values);
        } catch (error) {
          form.fail(error);
          // Keyboard and screen reader users land on the first field to fix.
          if (element && element.querySelector) {
            requestAnimationFrame(() => {
              const invalid = element.querySelector('[aria-invalid="true"]');
              if (invalid) invalid.focus();
            });
          }
        } finally {
          setBusy(false);
        }
      };
    },
  };
  return form;
}

/** A labelled input bound to form.values[name], with its error and hint read by screen readers. */
export function Field({ form, name, label, type = "text", hint, autocomplete, readOnly, required, inputMode, autofocus, children, ...rest }) {
  const id = `f-${name}-${useId()}`;
  form.fields.add(name);
  const error = form.errors[name];
  const input = useRef(null);
  useEffect(() => {
    if (autofocus && input.current) input.current.focus();
  }, []);
  const described = [hint || children ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean).join(" ") || undefined;
  return html`<div class=${`field${error ? " has-error" : ""}`}>
    <label for=${id}>${label}</label>
    <input id=${id} name=${name} type=${type} ref=${input} value=${form.values[name] ?? ""}
      autocomplete=${autocomplete} readOnly=${readOnly} required=${required} inputMode=${inputMode}
      aria-invalid=${error ? "true" : undefined} aria-describedby=${described}
      onInput=${(event) => form.set(name, event.currentTarget.value)} ...${rest} />
    ${hint || children ? html`<div class="hint" id=${`${id}-hint`}>${hint}${children}</div>` : null}
    ${error ? html`<div class="field-error" id=${`${id}-error`}>${error}</div>` : null}
  </div>`;
}

/** The form's own message (an error not tied to a field), announced when it appears. */
export function FormError({ form }) {
  if (!form.message) return null;
  return html`<div class="alert alert-error" role="alert">${form.message}</div>`;
}

export function SubmitButton({ form, children, busyLabel, kind = "primary", ...rest }) {
  return html`<button type="submit" class=${`button ${kind}`} disabled=${form.busy} aria-busy=${form.busy ? "true" : undefined} ...${rest}>
    ${form.busy ? html`<span class="spinner" aria-hidden="true"></span> ${busyLabel || "Working…"}` : children}
  </button>`;
}

function described(id, hint, error) {
  return [hint ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean).join(" ") || undefined;
}

function Below({ id, hint, error }) {
  return html`${hint ? html`<div class="hint" id=${`${id}-hint`}>${hint}</div>` : null}
    ${error ? html`<div class="field-error" id=${`${id}-error`}>${error}</div>` : null}`;
}

/** A <select> bound to form.values[name], its API error next to it (as Field). Its options are
 * `children` (<option> elements) or `options`: [value, label] pairs. */
export function SelectField({ form, name, label, hint, disabled, options, children }) {
  const id = `f-${name}-${useId()}`;
  form.fields.add(name);
  const error = form.errors[name];
  return html`<div class=${`field${error ? " has-error" : ""}`}>
    <label for=${id}>${label}</label>
    <select id=${id} name=${name} value=${form.values[name] ?? ""} disabled=${disabled}
      aria-invalid=${error ? "true" : undefined} aria-describedby=${described(id, hint, error)}
      onChange=${(event) => form.set(name, event.currentTarget.value)}>
      ${options ? options.map(([value, text]) => html`<option value=${value} key=${value}>${text}</option>`) : children}
    </select>
    <${Below} id=${id} hint=${hint} error=${error} />
  </div>`;
}

/** A <textarea> bound to form.values[name], its API error next to it. */
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
