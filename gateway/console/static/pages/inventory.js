// Inventory (needs vm.view, node.view or storage.view: each list shows with its own): the Proxmox VE guests, nodes and storages of the active tenant's
// connections, as the last poll saw them. The API shows only what the user's permissions and
// scope cover; the page shows what it gets. Power actions (start: vm.start; shutdown and stop:
// vm.stop; reboot: vm.restart) show only with their permission (the server checks each guest's
// scope anyway); their outcome is said in words, then the page follows the guest until its
// status says the action is done.
import { html, useEffect, useRef, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { can } from "../session.js";
import { Link } from "../router.js";
import { EmptyState, ErrorAlert, Loading, describe } from "../components/feedback.js";
import { ConfirmDialog } from "../components/dialog.js";
import { areaStylesheet } from "../components/stylesheet.js";

areaStylesheet("inventory");

const LIMIT = 200;
// action -> [permission, button label, verb for the outcome, the status that means done, needs confirming]
export const ACTIONS = {
  start: ["vm.start", "Start", "Start", "running", false],
  shutdown: ["vm.stop", "Shut down", "Shutdown", "stopped", true],
  stop: ["vm.stop", "Stop", "Stop", "stopped", true],
  reboot: ["vm.restart", "Reboot", "Reboot", "running", true],
};
const FOLLOW_TRIES = 10;  // reads of the guest after an action (about 2 s apart)
const FOLLOW_PAUSE_MS = 2000;

function bytes(value) {
  if (value == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size >= 10 || unit === 0 ? Math.round(size) : size.toFixed(1)} ${units[unit]}`;
}

function percent(value) {
  return value == null ? "–" : `${Math.round(value * 100)} %`;
}

function usage(used, total) {
  if (!total) return "–";
  return `${bytes(used)} of ${bytes(total)}`;
}

function StatusBadge({ status }) {
  const known = ["running", "stopped", "online", "offline", "available", "paused"].includes(status);
  return html`<span class=${`badge inv-status ${known ? `inv-${status}` : "inv-unknown"}`}>${status || "unknown"}</span>`;
}

function guestLabel(vm) {
  return `${vm.name || (vm.type === "lxc" ? "container" : "VM")} (${vm.vmid})`;
}

/** Reads one list of the inventory if the user may: {items, total, more} or null. */
function readList(kind, permission) {
  if (!can(permission)) return Promise.resolve(null);
  return api.get(`/inventory/${kind}`, { limit: LIMIT }).then((answer) => ({
    items: answer.data.items, total: answer.data.total, more: Boolean(answer.data.next_cursor),
  }));
}

export function InventoryPage() {
  const [lists, setLists] = useState(null);  // {vms, nodes, storages, connections}
  const [error, setError] = useState(null);
  const [reloads, setReloads] = useState(0);
  const [outcome, setOutcome] = useState(null);  // {kind: info|error, text, busy}
  const [asking, setAsking] = useState(null);  // {vm, action} to confirm
  const [busyVm, setBusyVm] = useState(null);
  const live = useRef(true);
  useEffect(() => () => { live.current = false; }, []);

  useEffect(() => {
    let current = true;
    Promise.all([
      readList("vms", "vm.view"), readList("nodes", "node.view"), readList("storages", "storage.view"),
      can("connection.view")
        ? api.get("/connections", { limit: LIMIT }).then((answer) => answer.data.items, () => null) : Promise.resolve(null),
    ]).then(([vms, nodes, storages, connections]) => {
      if (current) { setLists({ vms, nodes, storages, connections }); setError(null); }
    }, (problem) => { if (current) setError(problem); });
    return () => { current = false; };
  }, [reloads]);

  const reload = () => setReloads((count) => count + 1);

  /** Reads the guest again until its status is `done` (or we stop trying), saying so. */
  const follow = async (vm, verb, done) => {
    for (let attempt = 0; attempt < FOLLOW_TRIES && live.current; attempt += 1) {
      let now;
      try {
        now = (await api.get(`/inventory/vms/${encodeURIComponent(vm.id)}`)).data;
      } catch (problem) {
        break;
      }
      if (now.status === done) {
        setOutcome({ kind: "info", text: `${verb} of ${guestLabel(vm)} done: it is ${done}.` });
        reload();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_PAUSE_MS));
    }
    if (live.current) {
      setOutcome({ kind: "info", text: `${verb} of ${guestLabel(vm)} was sent; the inventory does not show it ${done} yet. Refresh in a moment.` });
      reload();
    }
  };

  const act = async (vm, action) => {
    const [, , verb, done] = ACTIONS[action];
    setBusyVm(vm.id);
    setOutcome({ kind: "info", busy: true, text: `${verb} of ${guestLabel(vm)}: asking Proxmox VE…` });
    try {
      const answer = await api.post(`/inventory/vms/${encodeURIComponent(vm.id)}/${action}`);
      const task = answer.data.task;
      setOutcome({ kind: "info", busy: true,
                   text: `${verb} of ${guestLabel(vm)} accepted by Proxmox VE${task ? ` (task ${task})` : ""}; waiting for it to be ${done}…` });
      await follow(vm, verb, done);
    } catch (problem) {
      setOutcome({ kind: "error", text: `${verb} of ${guestLabel(vm)} failed: ${actionWords(problem)}` });
    } finally {
      if (live.current) setBusyVm(null);
    }
  };

  const request = (vm, action) => {
    if (ACTIONS[action][4]) setAsking({ vm, action });
    else act(vm, action);
  };

  if (error) return html`<${Header} onRefresh=${reload} /><${ErrorAlert} error=${error} />`;
  if (!lists) return html`<${Header} /><${Loading} label="Loading the inventory…" />`;
  const names = Object.fromEntries((lists.connections || []).map((c) => [c.id, c.name]));
  // Without connection.view the names are unknown: a short id, the whole one on hover.
  const connectionName = (id) => names[id] || html`<span title=${id}>${String(id).slice(0, 8)}…</span>`;
  const nothing = [lists.vms, lists.nodes, lists.storages].every((list) => !list || list.items.length === 0);
  return html`<div class="inventory">
    <${Header} onRefresh=${reload} />
    ${outcome ? html`<div class=${`alert alert-${outcome.kind === "error" ? "error" : "info"} inv-outcome`}
                         role=${outcome.kind === "error" ? "alert" : "status"} aria-live="polite">
        ${outcome.busy ? html`<span class="spinner" aria-hidden="true"></span> ` : null}${outcome.text}</div>` : null}
    ${nothing ? html`<${NothingYet} connections=${lists.connections} />` : html`
      ${lists.vms ? html`<${Guests} list=${lists.vms} connectionName=${connectionName} busyVm=${busyVm} onAction=${request} />` : null}
      ${lists.nodes ? html`<${Nodes} list=${lists.nodes} connectionName=${connectionName} />` : null}
      ${lists.storages ? html`<${Storages} list=${lists.storages} connectionName=${connectionName} />` : null}`}
    ${asking ? html`<${ConfirmDialog} open=${true} title=${`${ACTIONS[asking.action][1]} ${guestLabel(asking.vm)}?`}
        confirmLabel=${ACTIONS[asking.action][1]} danger=${asking.action === "stop"}
        onConfirm=${async () => { const { vm, action } = asking; setAsking(null); act(vm, action); }}
        onClose=${() => setAsking(null)}>
        <p>${confirmWords(asking.action)}</p>
      <//>` : null}
  </div>`;
}

function confirmWords(action) {
  if (action === "stop") return "Stop cuts the power: the guest's programs get no chance to save their work. Shut down is the gentle way.";
  if (action === "shutdown") return "The guest's operating system is asked to shut down; it stops once it has.";
  return "The guest restarts: whoever uses it is disconnected for a moment.";
}

function actionWords(problem) {
  if (problem.code === "action_refused") return `Proxmox VE refused: ${problem.message}`;
  if (problem.status === 502) return `Proxmox VE could not be reached or failed (${problem.code}): ${problem.message}`;
  if (problem.code === "permission_denied") return "You are not allowed to do this to this guest.";
  return describe(problem);
}

function Header({ onRefresh }) {
  return html`<header class="page-header inv-header"><h1>Inventory</h1>
    ${onRefresh ? html`<button type="button" class="button small" onClick=${onRefresh}>Refresh</button>` : null}
  </header>
  <p class="hint">What the last poll of this tenant's Proxmox VE connections saw (every few seconds), within your permissions and scope.</p>`;
}

function NothingYet({ connections }) {
  if (connections && connections.length === 0) {
    return html`<${EmptyState} title="There are no Proxmox VE connections yet.">
      ${can("connection.manage")
        ? html`Add one in <${Link} href="/connections">Connections<//>; its nodes, guests and storages show here after its first poll.`
        : "An administrator adds them in Connections; their nodes, guests and storages show here after the first poll."}
    <//>`;
  }
  return html`<${EmptyState} title="Nothing to show yet.">
    Either this tenant has no Proxmox VE connections yet (they are added in
    ${can("connection.view") ? html`<${Link} href="/connections">Connections<//>` : "Connections"}), their first poll
    has not finished, or none of their guests, nodes and storages is in your scope.
  <//>`;
}

function More({ list, what }) {
  return list.more ? html`<p class="hint">Showing the first ${list.items.length} of ${list.total} ${what}.</p>` : null;
}

function Guests({ list, connectionName, busyVm, onAction }) {
  const allowed = Object.keys(ACTIONS).filter((action) => can(ACTIONS[action][0]));
  return html`<section class="inv-section" aria-labelledby="inv-vms">
    <h2 id="inv-vms">Virtual machines and containers <span class="badge">${list.total}</span></h2>
    ${list.items.length === 0 ? html`<${EmptyState} title="No guests in your scope." />` : html`
    <div class="table-wrap"><table class="table inv-table">
      <thead><tr><th scope="col">Name</th><th scope="col">ID</th><th scope="col">Type</th><th scope="col">Node</th>
        <th scope="col">Connection</th><th scope="col">Status</th><th scope="col">CPU</th><th scope="col">Memory</th>
        ${allowed.length ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}</tr></thead>
      <tbody>${list.items.map((vm) => html`<tr key=${vm.id} data-vm=${vm.id}>
        <th scope="row" data-label="Name">${vm.name || "–"}${vm.template ? html` <span class="badge">template</span>` : null}</th>
        <td data-label="ID">${vm.vmid}</td>
        <td data-label="Type">${vm.type === "lxc" ? "Container" : "VM"}</td>
        <td data-label="Node">${vm.node}</td>
        <td data-label="Connection">${connectionName(vm.connection_id)}</td>
        <td data-label="Status"><${StatusBadge} status=${vm.status} /></td>
        <td data-label="CPU">${vm.status === "running" ? percent(vm.cpu) : "–"}</td>
        <td data-label="Memory">${usage(vm.mem, vm.maxmem)}</td>
        ${allowed.length ? html`<td class="inv-actions">${vm.template ? null : allowed
          .filter((action) => (vm.status === "running") === (action !== "start"))
          .map((action) => html`<button type="button" key=${action} class="button small" disabled=${busyVm === vm.id}
              aria-label=${`${ACTIONS[action][1]} ${guestLabel(vm)}`} onClick=${() => onAction(vm, action)}>
              ${ACTIONS[action][1]}</button>`)}</td>` : null}
      </tr>`)}</tbody>
    </table></div>`}
    <${More} list=${list} what="guests" />
  </section>`;
}

function Nodes({ list, connectionName }) {
  return html`<section class="inv-section" aria-labelledby="inv-nodes">
    <h2 id="inv-nodes">Nodes <span class="badge">${list.total}</span></h2>
    ${list.items.length === 0 ? html`<${EmptyState} title="No nodes in your scope." />` : html`
    <div class="table-wrap"><table class="table inv-table">
      <thead><tr><th scope="col">Node</th><th scope="col">Connection</th><th scope="col">Status</th>
        <th scope="col">CPU</th><th scope="col">Memory</th><th scope="col">Disk</th></tr></thead>
      <tbody>${list.items.map((node) => html`<tr key=${node.id}>
        <th scope="row" data-label="Node">${node.node}</th>
        <td data-label="Connection">${connectionName(node.connection_id)}</td>
        <td data-label="Status"><${StatusBadge} status=${node.status} /></td>
        <td data-label="CPU">${percent(node.cpu)}${node.maxcpu ? html` <small>of ${node.maxcpu}</small>` : null}</td>
        <td data-label="Memory">${usage(node.mem, node.maxmem)}</td>
        <td data-label="Disk">${usage(node.disk, node.maxdisk)}</td>
      </tr>`)}</tbody>
    </table></div>`}
    <${More} list=${list} what="nodes" />
  </section>`;
}

function Storages({ list, connectionName }) {
  return html`<section class="inv-section" aria-labelledby="inv-storages">
    <h2 id="inv-storages">Storages <span class="badge">${list.total}</span></h2>
    ${list.items.length === 0 ? html`<${EmptyState} title="No storages in your scope." />` : html`
    <div class="table-wrap"><table class="table inv-table">
      <thead><tr><th scope="col">Storage</th><th scope="col">Node</th><th scope="col">Connection</th>
        <th scope="col">Type</th><th scope="col">Content</th><th scope="col">Status</th><th scope="col">Used</th></tr></thead>
      <tbody>${list.items.map((storage) => html`<tr key=${storage.id}>
        <th scope="row" data-label="Storage">${storage.storage}${storage.shared ? html` <span class="badge">shared</span>` : null}</th>
        <td data-label="Node">${storage.node}</td>
        <td data-label="Connection">${connectionName(storage.connection_id)}</td>
        <td data-label="Type">${storage.plugintype || "–"}</td>
        <td data-label="Content">${storage.content || "–"}</td>
        <td data-label="Status"><${StatusBadge} status=${storage.status} /></td>
        <td data-label="Used">${usage(storage.disk, storage.maxdisk)}</td>
      </tr>`)}</tbody>
    </table></div>`}
    <${More} list=${list} what="storages" />
  </section>`;
}
