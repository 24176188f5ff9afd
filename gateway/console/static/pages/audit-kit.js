// Shared pieces of the Audit and Sync pages (pages/audit*.js, pages/sync*.js): their stylesheet,
// time formatting, and the API's query-string problems as field -> sentence.
import { areaStylesheet } from "../components/stylesheet.js";
import { html } from "../lib/preact.js";
import { fieldProblems } from "../api.js";
import { when as formatWhen } from "../components/format.js";

areaStylesheet("audit");

/** Audit records and sync runs: to the second by default. */
export function when(iso, withSeconds = true) {
  return formatWhen(iso, withSeconds);
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** An ApiError's field problems, including the gateway's query-string ones
 * (`details: {"query": {"since": ["Not a valid datetime."]}}`). */
export function problemsOf(error) {
  const fields = { ...(error && error.fields) };
  const query = error && error.details && error.details.query;
  if (query && typeof query === "object") {
    delete fields.query;
    Object.assign(fields, fieldProblems(query));
  }
  return fields;
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

export function Facts({ rows }) {
  return html`<dl class="facts">${rows.filter(([, value]) => value !== null && value !== undefined && value !== "")
    .map(([label, value]) => html`<div class="fact" key=${label}><dt>${label}</dt><dd>${value}</dd></div>`)}</dl>`;
}
