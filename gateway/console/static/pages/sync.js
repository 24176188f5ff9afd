// Sync (needs sync.view): each target Gatehouse writes to (the LDAP directory, each Proxmox VE
// connection) with its last run, duration, changes, error, work waiting and the progress of a
// running full sync, from GET /api/v1/sync/status, polled every 1.5 s while something runs or
// waits (every 15 s otherwise), so the page stays live without a reload. "Run now" (sync.run)
// asks for a full sync (POST /api/v1/sync/run) and follows it until its run has finished.
import { html, useEffect, useRef, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { can, useSession } from "../session.js";
import { Alert, ErrorAlert, EmptyState, Loading } from "../components/feedback.js";
import { when, duration, plural, Facts } from "./audit-kit.js";

const BUSY_EVERY_MS = 1500;
const IDLE_EVERY_MS = 15000;
const STATE_WORDS = { idle: "Idle", running: "Running", failing: "Failing (retrying)", requested: "Requested" };

/** Whether the full sync asked for at `asked` ({full, started}: the target's last_full_at and
 * last_run.started_at then) is over, by the target's status now: "done", "failed" or null. */
export function requestOutcome(item, asked) {
  if (!item || item.running || item.pending > 0) return null;
  if (item.last_full_at && item.last_full_at !== asked.full) return "done";
  const run = item.last_run;
  if (run && run.mode === "full" && run.finished_at && run.started_at !== asked.started && run.error) return "failed";
  return null;
}

export function SyncPage() {
  const session = useSession();
  const superAdmin = Boolean(session.access && session.access.super_admin);
  const mayRun = can("sync.run");
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  const [names, setNames] = useState({});  // connection id -> {name, tenant}
  const [requested, setRequested] = useState({});  // target -> {full, started}
  const [log, setLog] = useState([]);  // what happened to the runs asked for, newest last
  const [asking, setAsking] = useState(null);  // "all" or a target, while POST /sync/run goes
  const [runError, setRunError] = useState(null);
  const [polls, setPolls] = useState(0);
  const requestedRef = useRef(requested);
  requestedRef.current = requested;

  const note = (text, kind = "info") => setLog((old) => [...old.slice(-19), { at: new Date(), text, kind }]);

  useEffect(() => {
    if (!can("connection.view")) return;
    api.get("/connections", { limit: 200, ...(superAdmin ? { tenant: "*" } : {}) }).then(
      (answer) => setNames(Object.fromEntries(answer.data.items.map((item) => [item.id, item]))), () => {},
    );
  }, [superAdmin]);

  useEffect(() => {  // read the status; again soon while anything runs, waits or was asked for
    let live = true;
    let timer = null;
    api.get("/sync/status").then(
      (answer) => {
        if (!live) return;
        setStatus(answer.data);
        setError(null);
        follow(answer.data.items);
        const busy = answer.data.items.some((item) => item.running || item.pending > 0)
          || Object.keys(requestedRef.current).length > 0;
        timer = setTimeout(() => setPolls((count) => count + 1), busy ? BUSY_EVERY_MS : IDLE_EVERY_MS);
      },
      (problem) => {
        if (!live) return;
        setError(problem);
        timer = setTimeout(() => setPolls((count) => count + 1), IDLE_EVERY_MS);
      },
    );
    return () => { live = false; clearTimeout(timer); };
  }, [polls]);

  const nameOf = (item) => targetName(item, names);
  const follow = (items) => {  // a run asked for has finished: say so, stop following it
    const asked = requestedRef.current;
    const over = {};
    for (const item of items) {
      if (!asked[item.target]) continue;
      const outcome = requestOutcome(item, asked[item.target]);
      if (!outcome) continue;
      over[item.target] = true;
      const run = item.last_run || {};
      if (outcome === "done") {
        note(`${nameOf(item)}: full sync finished at ${when(run.finished_at || item.last_full_at)}, `
             + `${plural(run.changes || 0, "change")} in ${duration(run.duration_ms)}.`, "success");
      } else {
        note(`${nameOf(item)}: full sync failed: ${(run.error && run.error.message) || "see the error below"}.`, "error");
      }
    }
    if (Object.keys(over).length) {
      setRequested((old) => Object.fromEntries(Object.entries(old).filter(([target]) => !over[target])));
    }
  };

  const run = async (targets) => {
    setAsking(targets ? targets[0] : "all");
    setRunError(null);
    const before = Object.fromEntries((status ? status.items : []).map((item) => [item.target, {
      full: item.last_full_at, started: item.last_run ? item.last_run.started_at : null }]));
    try {
      const answer = await api.post("/sync/run", targets ? { targets } : {});
      const queued = answer.data.queued || [];
      setRequested((old) => ({ ...old, ...Object.fromEntries(queued.map((target) => [target, before[target] || { full: null, started: null }])) }));
      const byTarget = Object.fromEntries((status ? status.items : []).map((item) => [item.target, item]));
      note(`Full sync requested: ${queued.map((target) => nameOf(byTarget[target] || { target })).join(", ") || "nothing to sync"}.`);
      setPolls((count) => count + 1);  // follow it at once
    } catch (problem) {
      setRunError(problem);
    } finally {
      setAsking(null);
    }
  };

  const items = (status && status.items) || [];
  return html`<section class="page sync-page">
    <header class="page-header"><h1>Sync</h1></header>
    <p class="hint">What Gatehouse writes to the LDAP directory and to each Proxmox VE connection. Changes to users,
      groups and roles go out at once; a full sync compares everything and repairs what drifted.
      ${superAdmin ? "" : " You see the directory and the connections of the active tenant."}</p>
    <div class="toolbar">
      ${mayRun && items.length ? html`<button type="button" class="button primary" disabled=${asking !== null}
          aria-busy=${asking === "all" ? "true" : undefined} onClick=${() => run(null)}>
          ${asking === "all" ? html`<span class="spinner" aria-hidden="true"></span> Requesting…` : "Sync everything now"}</button>` : null}
      <span class="poll-note">${status ? `Updated live; last read ${when(new Date().toISOString())}` : ""}</span>
    </div>
    <${ErrorAlert} error=${runError} />
    <${ErrorAlert} error=${error} />
    ${log.length ? html`<ol class="sync-log" role="log" aria-label="Sync activity" aria-live="polite">
      ${log.map((entry, index) => html`<li key=${index} class=${`log-${entry.kind}`}>
        <time>${entry.at.toLocaleTimeString()}</time> ${entry.text}</li>`)}
    </ol>` : null}
    ${status && !status.directory_configured ? html`<${Alert} kind="warning">No LDAP directory is configured yet:
      users cannot sign in to Proxmox VE through Gatehouse until a super admin sets it (Settings, LDAP directory).<//>` : null}
    ${!status && !error ? html`<${Loading} label="Reading the sync status…" />` : null}
    ${status && items.length === 0 ? html`<${EmptyState} title="Nothing to sync yet.">
      Configure the LDAP directory or add a Proxmox VE connection (Connections): each becomes a sync target here.<//>` : null}
    <div class="sync-targets">
      ${items.map((item) => html`<${TargetCard} key=${item.target} item=${item} name=${nameOf(item)}
          requested=${Boolean(requested[item.target])} mayRun=${mayRun}
          asking=${asking} onRun=${() => run([item.target])} />`)}
    </div>
  </section>`;
}

function targetName(item, names) {
  if (item.kind === "ldap" || item.target === "ldap") return "LDAP directory";
  const known = item.connection_id && names[item.connection_id];
  return known ? `Proxmox VE: ${known.name}` : `Proxmox VE connection ${item.connection_id || item.target}`;
}

function TargetCard({ item, name, requested, mayRun, asking, onRun }) {
  const state = item.running ? "running" : requested ? "requested" : item.state;
  const run = item.last_run;
  const finished = Boolean(run && run.finished_at && !item.running);
  const headingId = `target-${item.target.replace(/\W+/g, "-")}`;
  return html`<article class=${`panel sync-target state-${state}`} data-target=${item.target} data-state=${state}
      data-last-full=${item.last_full_at || ""} aria-labelledby=${headingId}>
    <header class="target-head">
      <h2 id=${headingId}>${name}</h2>
      <span class=${`badge sync-${state}`}>${STATE_WORDS[state] || state}</span>
      ${mayRun ? html`<button type="button" class="button small" disabled=${asking !== null || requested}
          aria-busy=${asking === item.target ? "true" : undefined} onClick=${onRun}
          aria-label=${`Run now: ${name}`}>${asking === item.target ? "Requesting…" : "Run now"}</button>` : null}
    </header>
    ${item.running ? html`<${Progress} item=${item} name=${name} />` : null}
    ${!item.running && requested ? html`<p class="progress-words" role="status"><span class="spinner" aria-hidden="true"></span>
      Full sync requested: waiting for it to start…</p>` : null}
    <${Facts} rows=${[
      ["Last run", run ? html`<span class="last-run" data-started=${run.started_at}>${item.running ? `started ${when(run.started_at)} (running)`
        : `${when(finished ? run.finished_at : run.started_at)} · ${run.mode === "full" ? "full sync" : "changes of users"}`}</span>` : "never"],
      ["Duration", run && finished ? duration(run.duration_ms) : null],
      ["Changes", run && finished ? `${plural(run.changes, "change")} written (${item.changes_total} in all)` : null],
      ["Last full sync", item.last_full_at ? when(item.last_full_at) : "never"],
      ["Work waiting", item.pending ? `${plural(item.pending, "unit")}${item.next_attempt_at ? `, next attempt ${when(item.next_attempt_at)}` : ""}` : "none"],
      ["Failing since", item.failing_since ? when(item.failing_since) : null],
    ]} />
    ${run && run.error && finished ? html`<div class="alert alert-error run-error" role="alert">
      <b>The last run failed</b>: ${run.error.message} <small>(${run.error.code})</small></div>` : null}
    ${item.conflicts && item.conflicts.length ? html`<details class="sync-more"><summary>${plural(item.conflicts.length, "object")} in the way</summary>
      <p class="hint">Objects Gatehouse does not manage stand where it would write; it leaves them alone.</p>
      <ul>${item.conflicts.map((conflict, index) => html`<li key=${index}><code>${conflict.dn || conflict.id || JSON.stringify(conflict)}</code>
        ${conflict.reason ? ` ${conflict.reason}` : ""}</li>`)}</ul></details>` : null}
    ${item.parked_count ? html`<details class="sync-more"><summary>${plural(item.parked_count, "subject")} refused by the target</summary>
      <p class="hint">The target refused these for their data; everyone else's changes went on. They are tried again
        when their data changes, on "Run now" and on every full sync.</p>
      ${item.parked && item.parked.length ? html`<ul>${item.parked.map((parked) => html`<li key=${parked.subject}>
        <code>${parked.label || parked.subject}</code>: ${(parked.reason && parked.reason.message) || "refused"}
        <small> (${plural(parked.attempts, "attempt")}, since ${when(parked.since)})</small></li>`)}</ul>` : null}
    </details>` : null}
  </article>`;
}

function Progress({ item, name }) {
  const progress = item.progress || { done: 0, total: 0 };
  const words = progress.total
    ? `${item.running === "full" ? "Full sync" : "Sync"} running: ${progress.done} of ${plural(progress.total, "change")} written`
    : `${item.running === "full" ? "Full sync" : "Sync"} running: comparing…`;
  return html`<div class="sync-progress" role="status">
    <progress max=${progress.total || undefined} value=${progress.total ? progress.done : undefined}
              aria-label=${`Progress of ${name}`}></progress>
    <span class="progress-words">${words}</span>
  </div>`;
}
