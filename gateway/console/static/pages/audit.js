// Audit log (needs admin.audit): the trail of GET /api/v1/audit/events, newest first, with its
// filters (category, action, actor, resource, outcome, time range, free text; the tenant for super
// admins), keyset paging, a record's detail (its before/after when it records a change), export
// of the filtered view (GET /api/v1/audit/export, fetched with the session's token and saved as
// a file: no token in a URL) and, for super admins, the hash chain's check (GET /audit/verify).
// Scoping is the API's: a tenant administrator reads their tenant's records, super admins all.
import { html, useEffect, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { useSession } from "../session.js";
import { useForm, Field, FormError, SubmitButton } from "../components/form.js";
import { Alert, ErrorAlert, EmptyState, Loading, describe } from "../components/feedback.js";
import { Dialog } from "../components/dialog.js";
import { when, problemsOf, plural, Facts } from "./audit-kit.js";

const PAGE_SIZES = [10, 25, 50, 100, 200];
const CATEGORIES = ["auth", "users", "rbac", "tenancy", "sync", "operations", "settings", "audit", "system"];
const OUTCOMES = ["success", "failure"];
const TEXT_FILTERS = ["q", "category", "action", "actor", "resource_type", "resource_id", "outcome", "tenant"];
const EMPTY = { q: "", category: "", action: "", actor: "", resource_type: "", resource_id: "", outcome: "",
                since: "", until: "", tenant: "" };

/** The form's values as the API's query: empty ones left out, local times as ISO-8601 UTC. */
export function auditQuery(values) {
  const query = {};
  for (const name of TEXT_FILTERS) {
    const value = (values[name] || "").trim();
    if (value) query[name] = value;
  }
  const problems = {};
  for (const name of ["since", "until"]) {
    if (!values[name]) continue;
    const date = new Date(values[name]);
    if (Number.isNaN(date.getTime())) problems[name] = "Not a valid date and time.";
    else query[name] = date.toISOString();
  }
  if (query.since && query.until && query.since >= query.until) problems.until = "Must be after “From”.";
  if (Object.keys(problems).length) throw Object.assign(new Error("Check the highlighted fields."), { fields: problems });
  return query;
}

function fromUrl(urlQuery) {
  const values = { ...EMPTY };
  if (urlQuery) for (const name of Object.keys(EMPTY)) values[name] = urlQuery.get(name) || "";
  return values;
}

/** A select bound to form.values[name] with its error (the frame's Field is for inputs). */
function Choice({ form, name, label, options, all }) {
  const id = `audit-${name}`;
  form.fields.add(name);
  const error = form.errors[name];
  return html`<div class=${`field${error ? " has-error" : ""}`}>
    <label for=${id}>${label}</label>
    <select id=${id} name=${name} value=${form.values[name]} aria-invalid=${error ? "true" : undefined}
            aria-describedby=${error ? `${id}-error` : undefined}
            onChange=${(event) => form.set(name, event.currentTarget.value)}>
      <option value="">${all}</option>
      ${options.map(([value, text]) => html`<option value=${value} key=${value}>${text}</option>`)}
    </select>
    ${error ? html`<div class="field-error" id=${`${id}-error`}>${error}</div>` : null}
  </div>`;
}

export function AuditPage({ query: urlQuery }) {
  const session = useSession();
  const superAdmin = Boolean(session.access && session.access.super_admin);
  const form = useForm(fromUrl(urlQuery));
  const [applied, setApplied] = useState(null);  // the query of the list shown (and of the export)
  const [cursors, setCursors] = useState([null]);
  const [page, setPage] = useState(null);
  const [loading, setLoading] = useState(false);
  const [loadError, setLoadError] = useState(null);
  const [detail, setDetail] = useState(null);
  const [tenants, setTenants] = useState([]);
  const [size, setSize] = useState(50);

  useEffect(() => {
    if (!superAdmin) return;
    api.get("/tenants", { limit: 200 }).then((answer) => setTenants(answer.data.items), () => {});
  }, [superAdmin]);

  const load = async (query, cursor, limit = size) => {
    setLoading(true);
    try {
      const answer = await api.get("/audit/events", { ...query, limit, cursor });
      setPage(answer.data);
      setLoadError(null);
      return answer.data;
    } finally {
      setLoading(false);
    }
  };
  const apply = async (values) => {
    const query = auditQuery(values);
    try {
      await load(query, null);
    } catch (problem) {
      if (problem.fields) problem.fields = problemsOf(problem);
      throw problem;
    }
    setApplied(query);
    setCursors([null]);
  };
  const search = form.submit(apply);
  const related = (values) => {  // from a record: everything by its actor, or about its resource
    const next = { ...EMPTY, tenant: form.values.tenant, ...values };
    setDetail(null);
    form.setValues(next);
    form.clear();
    apply(next).catch(form.fail);
  };
  const resize = (limit) => {
    setSize(limit);
    load(applied, null, limit).then(() => setCursors([null]), setLoadError);
  };
  useEffect(() => {  // the first page, with the filters of the address (if any)
    let query;
    try { query = auditQuery(form.values); } catch { query = {}; }
    load(query, null).then(() => setApplied(query), (problem) => { setApplied(query); setLoadError(problem); });
  }, []);
  const turn = (next) => {
    load(applied, next[next.length - 1]).then(() => setCursors(next), setLoadError);
  };
  const clear = () => {
    form.setValues({ ...EMPTY });
    form.clear();
    load({}, null).then(() => { setApplied({}); setCursors([null]); }, setLoadError);
  };

  const items = (page && page.items) || [];
  const filtered = applied && Object.keys(applied).length > 0;
  const tenantName = (id) => (tenants.find((tenant) => tenant.id === id) || {}).name
    || ((session.tenants || []).find((tenant) => tenant.tenant_id === id) || {}).tenant_name || id;
  return html`<section class="page audit-page">
    <header class="page-header"><h1>Audit log</h1></header>
    <p class="hint">${superAdmin
      ? "Every tenant's records and the platform's own, newest first."
      : "The records of the active tenant, newest first."}</p>
    <form class="panel audit-filters" onSubmit=${search} novalidate aria-label="Audit filters">
      <${FormError} form=${form} />
      <div class="filter-grid">
        <div class="wide"><${Field} form=${form} name="q" label="Search" type="search"
             hint="Part of a username, name, email, resource name or action" /></div>
        <${Choice} form=${form} name="category" label="Category" all="Any category"
                   options=${CATEGORIES.map((name) => [name, name])} />
        <${Field} form=${form} name="action" label="Action" hint="Exactly, e.g. user_created" />
        <${Field} form=${form} name="actor" label="Actor" hint="Username of who did it" />
        <${Field} form=${form} name="resource_type" label="Resource type" hint="e.g. user, role, connection" />
        <${Field} form=${form} name="resource_id" label="Resource id" />
        <${Choice} form=${form} name="outcome" label="Outcome" all="Any outcome"
                   options=${OUTCOMES.map((name) => [name, name === "success" ? "Success" : "Failure"])} />
        <${Field} form=${form} name="since" label="From" type="datetime-local" step="1" />
        <${Field} form=${form} name="until" label="Until" type="datetime-local" step="1" hint="Before this time" />
        ${superAdmin ? html`<${Choice} form=${form} name="tenant" label="Tenant" all="Every tenant"
                   options=${tenants.map((tenant) => [tenant.id, tenant.name])} />` : null}
      </div>
      <div class="actions">
        <${SubmitButton} form=${form} busyLabel="Searching…">Apply filters<//>
        <button type="button" class="button" onClick=${clear} disabled=${form.busy}>Clear filters</button>
      </div>
    </form>
    <div class="toolbar audit-tools">
      <${ExportButtons} query=${applied} />
      ${superAdmin ? html`<${VerifyChain} />` : null}
    </div>
    <${ErrorAlert} error=${loadError} />
    <div class="table-wrap">
      <table class="table audit-table" aria-label="Audit records" aria-busy=${loading ? "true" : "false"}>
        <thead><tr>
          <th scope="col">Time</th><th scope="col">Action</th><th scope="col">Outcome</th><th scope="col">Actor</th>
          <th scope="col">Resource</th>${superAdmin ? html`<th scope="col">Tenants</th>` : null}
          <th scope="col"><span class="visually-hidden">Details</span></th>
        </tr></thead>
        <tbody>
          ${items.map((record) => html`<tr key=${record.id} data-seq=${record.seq} data-action=${record.action}
              data-outcome=${record.outcome}>
            <td data-label="Time">${when(record.recorded_at)}</td>
            <td data-label="Action"><span class="category">${record.category}</span> ${record.action}</td>
            <td data-label="Outcome"><span class=${`badge outcome-${record.outcome}`}>${record.outcome}</span></td>
            <td data-label="Actor">${actorWords(record.actor)}</td>
            <td data-label="Resource">${resourceWords(record.resource)}</td>
            ${superAdmin ? html`<td data-label="Tenants">${(record.tenant_ids || []).map(tenantName).join(", ") || "—"}</td>` : null}
            <td class="row-actions"><button type="button" class="button small"
                aria-label=${`Details of record ${record.seq}`} onClick=${() => setDetail(record)}>Details</button></td>
          </tr>`)}
        </tbody>
      </table>
    </div>
    ${loading && !page ? html`<${Loading} label="Loading the audit trail…" />` : null}
    ${page && items.length === 0 && (filtered
      ? html`<${EmptyState} title="No record matches these filters.">
          Widen the time range or <button type="button" class="link-button" onClick=${clear}>clear the filters</button>.<//>`
      : html`<${EmptyState} title="No audit records yet.">Sign-ins, changes to users, roles, tenants and
          connections are recorded here as they happen.<//>`)}
    <div class="pager">
      <span class="pager-total">${page ? `${plural(items.length, "record")} on page ${cursors.length}${page.next_cursor ? ", more on the next" : ""}` : ""}</span>
      <label for="audit-size">Per page</label>
      <select id="audit-size" value=${size} disabled=${loading} onChange=${(event) => resize(Number(event.currentTarget.value))}>
        ${PAGE_SIZES.map((count) => html`<option value=${count} key=${count}>${count}</option>`)}
      </select>
      <button type="button" class="button" disabled=${cursors.length < 2 || loading}
              onClick=${() => turn(cursors.slice(0, -1))}>Previous</button>
      <button type="button" class="button" disabled=${!(page && page.next_cursor) || loading}
              onClick=${() => turn([...cursors, page.next_cursor])}>Next</button>
    </div>
    ${detail ? html`<${RecordDialog} record=${detail} tenantName=${tenantName} onRelated=${related}
        onClose=${() => setDetail(null)} />` : null}
  </section>`;
}

function actorWords(actor) {
  if (!actor || !(actor.username || actor.user_id || actor.ip)) return "—";
  const name = actor.username || actor.display_name || actor.user_id;
  return html`${name || "—"}${actor.ip ? html`<br /><small>${actor.ip}</small>` : null}`;
}

function resourceWords(resource) {
  if (!resource || !resource.type) return "—";
  const name = resource.name || resource.id;
  return html`<small>${resource.type}</small>${name ? html` ${name}` : null}`;
}

// --- export -----------------------------------------------------------------------------------

const FORMATS = [["csv", "CSV", "text/csv"], ["jsonl", "JSON lines", "application/x-ndjson"]];

function filenameOf(headers, format) {
  const given = /filename="?([^";]+)"?/.exec((headers && headers.get("Content-Disposition")) || "");
  return given ? given[1] : `audit.${format}`;
}

function ExportButtons({ query }) {
  const [busy, setBusy] = useState(null);
  const [error, setError] = useState(null);
  const [done, setDone] = useState("");
  const run = async (format, media) => {
    setBusy(format);
    setError(null);
    setDone("");
    try {
      const answer = await api.request("GET", "/audit/export", { query: { ...query, format }, headers: { Accept: media } });
      const text = answer.text || "";
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([text], { type: media }));
      link.download = filenameOf(answer.headers, format);
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      const lines = text.split("\n").filter(Boolean).length - (format === "csv" ? 1 : 0);
      setDone(`Saved ${link.download}: ${plural(Math.max(lines, 0), "record")}.`);
    } catch (problem) {
      setError(problem);
    } finally {
      setBusy(null);
    }
  };
  return html`<div class="export" role="group" aria-label="Export the filtered records">
    <span class="export-label">Export what the filters select:</span>
    ${FORMATS.map(([format, label, media]) => html`<button type="button" class="button" key=${format}
        disabled=${busy !== null || query === null} aria-busy=${busy === format ? "true" : undefined}
        onClick=${() => run(format, media)}>${busy === format ? html`<span class="spinner" aria-hidden="true"></span> Exporting…` : `Export ${label}`}</button>`)}
    <span class="export-status" role="status">${done}</span>
    ${error ? html`<span class="field-error" role="alert">${describe(error)}</span>` : null}
  </div>`;
}

// --- the hash chain (super admins) ------------------------------------------------------------

const BREAKS = {
  content_changed: "its content was changed after it was recorded",
  link_broken: "it does not follow the record before it (its link to the previous hash is broken)",
  sequence_gap: "records before it are missing",
  head_mismatch: "the trail ends elsewhere than the chain head says (records at the end are missing or were added)",
};

export function verifyWords(answer) {
  if (answer.valid) {
    return `The audit trail is intact: ${plural(answer.checked, "record")} checked, from #${answer.start_seq} to #${answer.head_seq}; every hash matches.`;
  }
  const broken = answer.first_break || {};
  return `The audit trail is NOT intact: record #${broken.seq} fails the check, ${BREAKS[broken.reason] || broken.reason}. `
    + `${plural(answer.checked, "record")} checked.`;
}

function VerifyChain() {
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const verify = async () => {
    setBusy(true);
    setAnswer(null);
    setError(null);
    try {
      setAnswer((await api.get("/audit/verify")).data);
    } catch (problem) {
      setError(problem);
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="verify">
    <button type="button" class="button" onClick=${verify} disabled=${busy} aria-busy=${busy ? "true" : undefined}>
      ${busy ? html`<span class="spinner" aria-hidden="true"></span> Verifying every record…` : "Verify chain"}</button>
    ${answer ? html`<${Alert} kind=${answer.valid ? "success" : "error"}><span class="verify-answer">${verifyWords(answer)}</span><//>` : null}
    <${ErrorAlert} error=${error} />
  </div>`;
}

// --- one record ---------------------------------------------------------------------------------

/** The before/after of a change as rows [field, before, after]: `changed`/`changes` (field ->
 * {from, to}) or `before`/`after` objects, whichever the record carries. */
export function changeRows(data) {
  const rows = [];
  for (const key of ["changed", "changes"]) {
    const diff = data && data[key];
    if (diff && typeof diff === "object" && !Array.isArray(diff)) {
      for (const [field, change] of Object.entries(diff)) {
        if (change && typeof change === "object" && ("from" in change || "to" in change)) rows.push([field, change.from, change.to]);
        else rows.push([field, undefined, change]);
      }
    }
  }
  const before = data && data.before;
  const after = data && data.after;
  if ((before && typeof before === "object") || (after && typeof after === "object")) {
    const keys = new Set([...Object.keys(before || {}), ...Object.keys(after || {})]);
    for (const field of keys) {
      const was = (before || {})[field];
      const is = (after || {})[field];
      if (JSON.stringify(was) !== JSON.stringify(is)) rows.push([field, was, is]);
    }
  } else if (data && ("before" in data || "after" in data)) {
    rows.push(["value", data.before, data.after]);
  }
  return rows;
}

function shown(value) {
  if (value === undefined) return html`<span class="muted">—</span>`;
  if (value === null) return html`<span class="muted">none</span>`;
  if (typeof value === "object") return html`<code>${JSON.stringify(value)}</code>`;
  return String(value);
}

function RecordDialog({ record, tenantName, onRelated, onClose }) {
  const data = record.data || {};
  const changes = changeRows(data);
  const rest = Object.fromEntries(Object.entries(data).filter(([key]) => !["changed", "changes", "before", "after"].includes(key)));
  const actor = record.actor || {};
  const resource = record.resource || {};
  return html`<${Dialog} open title=${`Audit record #${record.seq}`} onClose=${onClose}
      footer=${html`
        ${actor.username ? html`<button type="button" class="button" onClick=${() => onRelated({ actor: actor.username })}>
          Everything by ${actor.username}</button>` : null}
        ${resource.type && resource.id ? html`<button type="button" class="button"
          onClick=${() => onRelated({ resource_type: resource.type, resource_id: resource.id })}>Everything about this ${resource.type}</button>` : null}
        <button type="button" class="button" onClick=${onClose}>Close</button>`}>
    <div class="audit-detail">
      <${Facts} rows=${[
        ["Action", `${record.action} (${record.category})`],
        ["Outcome", record.outcome],
        ["Recorded", when(record.recorded_at)],
        ["Happened", record.occurred_at !== record.recorded_at ? when(record.occurred_at) : null],
        ["Actor", [actor.username, actor.display_name && `(${actor.display_name})`, actor.email].filter(Boolean).join(" ") || null],
        ["Actor id", actor.user_id],
        ["From address", actor.ip],
        ["Resource", resource.type ? [resource.type, resource.name, resource.id && resource.id !== resource.name ? `(${resource.id})` : null].filter(Boolean).join(" ") : null],
        ["Tenants", (record.tenant_ids || []).map(tenantName).join(", ") || null],
        ["Event", `${record.type} from ${record.source}`],
        ["Request id", record.request_id],
        ["Event id", record.id],
      ]} />
      ${changes.length ? html`<h3>What changed</h3>
        <div class="table-wrap"><table class="table changes-table" aria-label="What changed">
          <thead><tr><th scope="col">Field</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
          <tbody>${changes.map(([field, was, is]) => html`<tr key=${field}>
            <th scope="row">${field}</th><td data-label="Before">${shown(was)}</td><td data-label="After">${shown(is)}</td></tr>`)}
          </tbody></table></div>` : null}
      ${Object.keys(rest).length ? html`<h3>${changes.length ? "Other details" : "Details"}</h3>
        <pre class="record-data" aria-label="Record data">${JSON.stringify(rest, null, 2)}</pre>` : null}
    </div>
  <//>`;
}
