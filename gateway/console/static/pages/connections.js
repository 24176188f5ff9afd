// Connections (needs connection.view; changes need connection.manage): the Proxmox VE endpoints
// of the active tenant with their sync state (GET /sync/status, when sync.view is held), and per
// connection: test (the answer in words), edit, set up the LDAP realm, delete. Adding and editing
// live in connections-dialogs.js (with the certificate fingerprint fetched for the admin to confirm).
import { closeRowMenusOutside } from "../components/rowmenu.js";
import {
  api, html, useEffect, useState, useSession, can, Alert, ErrorAlert, EmptyState, Loading, ConfirmDialog,
  tlsWords, authWords, SyncBadge, testWords,
} from "./connections-kit.js";
import { ConnectionDialog, RealmDialog } from "./connections-dialogs.js";

const LIMIT = 200;

/** The connections of the active tenant and their sync targets; `reload()` reads them again. */
export function useConnections(query = {}) {
  const [state, setState] = useState({ items: null, targets: {}, error: null, loading: true });
  const [reloads, setReloads] = useState(0);
  useEffect(() => {
    let live = true;
    setState((old) => ({ ...old, loading: true }));
    const status = can("sync.view")
      ? api.get("/sync/status").then((answer) => answer.data.items, () => [])
      : Promise.resolve([]);
    Promise.all([api.get("/connections", { limit: LIMIT, ...query }), status]).then(
      ([answer, targets]) => {
        if (!live) return;
        const byConnection = Object.fromEntries(targets.filter((t) => t.connection_id).map((t) => [t.connection_id, t]));
        setState({ items: answer.data.items, targets: byConnection, error: null, loading: false });
      },
      (error) => { if (live) setState((old) => ({ ...old, error, loading: false })); },
    );
    return () => { live = false; };
  }, [reloads, JSON.stringify(query)]);
  return { ...state, reload: () => setReloads((count) => count + 1) };
}

export function ConnectionsPage() {
  const session = useSession();
  const manage = can("connection.manage");
  const list = useConnections();
  const [dialog, setDialog] = useState(null);  // {kind, connection}
  const [notice, setNotice] = useState(null);  // {kind, text}
  const [error, setError] = useState(null);
  const [testing, setTesting] = useState(null);  // the name of the connection under test
  const active = (session.tenants || []).find((tenant) => tenant.active);
  useEffect(() => closeRowMenusOutside(), []);

  const done = (text) => {
    setDialog(null);
    if (text) setNotice({ kind: "success", text });
    list.reload();
  };
  const test = async (connection) => {
    setNotice(null);
    setError(null);
    setTesting(connection.name);
    try {
      const answer = await api.post(`/connections/${encodeURIComponent(connection.id)}/test`);
      setNotice({ kind: answer.data.ok ? "success" : "error", text: testWords(connection.name, answer.data) });
    } catch (problem) {
      setError(problem);
    } finally {
      setTesting(null);
    }
  };
  const remove = async (connection) => {
    await api.del(`/connections/${encodeURIComponent(connection.id)}`);
    done(`${connection.name} is deleted.`);
  };
  const open = (kind, connection) => {
    setNotice(null);
    setError(null);
    setDialog({ kind, connection });
  };

  const items = list.items || [];
  const close = () => setDialog(null);
  return html`<section class="page connections-page area-connections">
    <header class="page-header"><h1>Connections</h1></header>
    <p class="lead">The Proxmox VE endpoints of ${active ? html`the tenant <b>${active.tenant_name}</b>` : "this tenant"}:
      Gatehouse syncs users, groups and rights to each and reads its inventory.</p>
    ${manage ? html`<div class="toolbar"><div class="toolbar-actions">
      <button type="button" class="button primary" onClick=${() => open("add")}>Add connection</button>
    </div></div>` : null}
    ${testing ? html`<${Loading} label=${`Testing ${testing}…`} />` : null}
    ${notice ? html`<${Alert} kind=${notice.kind}>${notice.text}<//>` : null}
    <${ErrorAlert} error=${error} />
    <${ErrorAlert} error=${list.error} />
    ${list.items === null && !list.error ? html`<${Loading} label="Loading connections…" />` : null}
    ${list.items && items.length === 0 ? html`<${EmptyState} title="No connection in this tenant yet.">
        ${manage ? html`<b>Add connection</b> with the address of a Proxmox VE node and an API token (or a user and
          password) Gatehouse signs in with.` : "An administrator with connection.manage adds them."}<//>` : null}
    ${items.length > 0 ? html`<div class="table-wrap">
      <table class="table connections-table" aria-label="Connections" aria-busy=${list.loading ? "true" : "false"}>
        <thead><tr>
          <th scope="col">Name</th><th scope="col">Address</th><th scope="col">Signs in as</th>
          <th scope="col">TLS</th><th scope="col">Sync</th>
          ${manage ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}
        </tr></thead>
        <tbody>${items.map((connection) => html`<tr key=${connection.id} data-connection=${connection.name}>
          <td><span class="name">${connection.name}</span><br /><small>realm ${connection.realm}</small></td>
          <td><code>${connection.url}</code></td>
          <td>${authWords(connection)}</td>
          <td>${tlsWords(connection)}</td>
          <td><${SyncBadge} target=${list.targets[connection.id]} /></td>
          ${manage ? html`<td class="row-actions"><${RowMenu} name=${connection.name} actions=${[
            ["Test connection", () => test(connection)],
            ["Edit", () => open("edit", connection)],
            ["Set up realm", () => open("realm", connection)],
            ["Delete", () => open("delete", connection)],
          ]} /></td>` : null}
        </tr>`)}</tbody>
      </table>
    </div>` : null}
    ${dialog && (dialog.kind === "add" || dialog.kind === "edit") && html`<${ConnectionDialog}
        connection=${dialog.connection} onDone=${done} onClose=${close} />`}
    ${dialog && dialog.kind === "realm" && html`<${RealmDialog} connection=${dialog.connection}
        onDone=${done} onClose=${close} />`}
    ${dialog && dialog.kind === "delete" && html`<${ConfirmDialog} open title=${`Delete ${dialog.connection.name}?`}
        confirmLabel=${`Delete ${dialog.connection.name}`} busyLabel="Deleting…" danger
        onConfirm=${() => remove(dialog.connection)} onClose=${close}>
        <p>Gatehouse forgets this connection and its stored secret: it stops syncing users, groups and rights to
          <code>${dialog.connection.url}</code> and stops reading its inventory. Nothing is removed from the
          Proxmox VE itself.</p><//>`}
  </section>`;
}

/** A row's actions in a menu (a <details>, as on the Users page). */
export function RowMenu({ name, actions }) {
  return html`<details class="row-menu">
    <summary class="button" aria-label=${`Actions for ${name}`}>Actions</summary>
    <ul>${actions.map(([label, run]) => html`<li key=${label}>
      <button type="button" class="menu-item" onClick=${(event) => {
        const menu = event.currentTarget.closest("details");
        menu.open = false;
        menu.querySelector("summary").focus();  // where focus returns after a dialog
        run();
      }}>${label}</button></li>`)}
    </ul>
  </details>`;
}

