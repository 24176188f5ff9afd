// Users (needs admin.users): the seeds' Security > Users. The table of the active tenant's
// users with search, sort, status filter and server-side paging; row actions; create and
// invite; the invitations list; super admins' cross-tenant view. Only the public REST API.
import {
  api, html, useEffect, useState, query, errorWords, fullName, when, StatusBadge, twoFactorWords,
} from "./users-kit.js";
import { ApproveDialog, CreateDialog, EditDialog, InviteDialog, RemoveDialog, ResetDialog } from "./users-dialogs.js";
import { InvitationsPanel } from "./users-invitations.js";
import { AllTenantsPanel } from "./users-all-tenants.js";

const PAGE_SIZE = 25;
const COLUMNS = [  // [label, sort key of GET /api/v1/users]
  ["Name", "name"], ["Email", "email"], ["Role", "role"], ["Status", "status"],
  ["Last login", "last_login_at"], ["Created", "created_at"], ["2FA", "totp_enrolled"],
];
const STATUS_FILTERS = [["", "All"], ["pending", "Pending"], ["active", "Active"], ["suspended", "Suspended"],
                        ["invited", "Invited"]];

/** `session`: the frame's signed-in state ({user, superAdmin, ...}); `tab`: users | invitations | all-tenants. */
export function UsersPage({ session, tab = "users", navigate }) {
  const superAdmin = Boolean(session && session.superAdmin);
  const go = (path) => (navigate ? navigate(path) : (window.location.hash = path));
  const tabs = [["users", "Users", "/users"], ["invitations", "Invitations", "/users/invitations"]];
  if (superAdmin) tabs.push(["all-tenants", "All tenants", "/users/all-tenants"]);
  return html`<section class="page users-page">
    <h1>Users</h1>
    <nav class="tabs" aria-label="User administration">
      ${tabs.map(([key, label, path]) => html`<a href=${path} aria-current=${tab === key ? "page" : undefined}
          class=${tab === key ? "active" : ""} onClick=${(e) => { e.preventDefault(); go(path); }}>${label}</a>`)}
    </nav>
    ${tab === "invitations" ? html`<${InvitationsPanel} session=${session} />`
      : tab === "all-tenants" && superAdmin ? html`<${AllTenantsPanel} />`
      : html`<${UsersTable} session=${session} />`}
  </section>`;
}

function UsersTable({ session }) {
  const me = (session && session.user) || {};
  const superAdmin = Boolean(session && session.superAdmin);
  const [typed, setTyped] = useState("");
  const [filters, setFilters] = useState({ q: "", status: "", sort: "created_at", order: "desc" });
  const [cursors, setCursors] = useState([null]);  // the cursor of each page seen: Previous goes back
  const [page, setPage] = useState(null);
  const [pending, setPending] = useState(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState(null);
  const [dialog, setDialog] = useState(null);  // {kind, user}
  const [notice, setNotice] = useState("");
  const [reloads, setReloads] = useState(0);
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {  // search as the user types, a moment after the last key
    const timer = setTimeout(() => {
      if (typed.trim() !== filters.q) { setFilters({ ...filters, q: typed.trim() }); setCursors([null]); }
    }, 300);
    return () => clearTimeout(timer);
  }, [typed]);

  useEffect(() => {
    let live = true;
    setLoading(true);
    api.get(`/api/v1/users${query({ ...filters, limit: PAGE_SIZE, cursor })}`).then(
      (answer) => { if (live) { setPage(answer); setError(null); setLoading(false); } },
      (problem) => { if (live) { setError(problem); setLoading(false); } },
    );
    api.get(`/api/v1/users${query({ status: "pending", limit: 1 })}`).then(
      (answer) => { if (live) setPending(answer.total); }, () => {},
    );
    return () => { live = false; };
  }, [filters, cursor, reloads]);

  const reload = (words) => { if (words) setNotice(words); setDialog(null); setReloads(reloads + 1); };
  const sortBy = (key) => {
    setFilters({ ...filters, sort: key, order: filters.sort === key && filters.order === "asc" ? "desc" : "asc" });
    setCursors([null]);
  };
  const filterStatus = (status) => { setFilters({ ...filters, status }); setCursors([null]); };
  const act = async (words, call) => {
    setNotice("");
    try {
      await call();
      reload(words);
    } catch (problem) {
      setError(problem);
    }
  };

  const items = (page && page.items) || [];
  const searching = filters.q || filters.status;
  return html`<div class="users-table">
    <div class="toolbar">
      <div class="field search">
        <label for="user-search">Search</label>
        <input id="user-search" type="search" placeholder="Name, username or email" value=${typed}
               onInput=${(e) => setTyped(e.target.value)} />
      </div>
      <div class="chips" role="group" aria-label="Status">
        ${STATUS_FILTERS.map(([status, label]) => html`<button type="button"
            class=${`chip${filters.status === status ? " active" : ""}${status === "pending" && pending ? " attention" : ""}`}
            aria-pressed=${filters.status === status ? "true" : "false"} onClick=${() => filterStatus(status)}>
            ${label}${status === "pending" && pending !== null ? ` (${pending})` : ""}</button>`)}
      </div>
      <div class="actions">
        <button type="button" onClick=${() => setDialog({ kind: "invite" })}>Invite users</button>
        <button type="button" class="primary" onClick=${() => setDialog({ kind: "create" })}>Create user</button>
      </div>
    </div>
    ${notice && html`<p class="notice" role="status">${notice}</p>`}
    ${error && html`<div class="form-error" role="alert"><p>${errorWords(error)}</p></div>`}
    <div class="table-wrap">
    <table aria-busy=${loading ? "true" : "false"}>
      <thead><tr>
        ${COLUMNS.map(([label, key]) => html`<th scope="col"
            aria-sort=${filters.sort === key ? (filters.order === "asc" ? "ascending" : "descending") : "none"}>
          <button type="button" class="sort" onClick=${() => sortBy(key)}>${label}
            <span aria-hidden="true">${filters.sort === key ? (filters.order === "asc" ? " ▲" : " ▼") : ""}</span></button>
        </th>`)}
        <th scope="col"><span class="visually-hidden">Actions</span></th>
      </tr></thead>
      <tbody>
        ${items.map((user) => html`<${UserRow} key=${user.id} user=${user} me=${me} superAdmin=${superAdmin}
            open=${(kind) => setDialog({ kind, user })} act=${act} />`)}
      </tbody>
    </table>
    </div>
    ${page && items.length === 0 && html`<div class="empty">
      ${searching
        ? html`<p>No user matches${filters.q ? ` "${filters.q}"` : ""}${filters.status ? ` with status ${filters.status}` : ""}.
            <button type="button" class="link" onClick=${() => { setTyped(""); setFilters({ ...filters, q: "", status: "" }); setCursors([null]); }}>
            Show everyone</button></p>`
        : html`<p>No users in this tenant yet. <b>Invite users</b> by email, or <b>Create user</b> and hand over
            the password shown once.</p>`}
    </div>`}
    <div class="pager">
      <span>${page ? `${page.total}${page.total_exact === false ? "+" : ""} user${page.total === 1 ? "" : "s"}` : "Loading…"}</span>
      <button type="button" disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous</button>
      <button type="button" disabled=${!(page && page.next_cursor)}
              onClick=${() => setCursors([...cursors, page.next_cursor])}>Next</button>
    </div>
    ${dialog && dialog.kind === "edit" && html`<${EditDialog} user=${dialog.user} me=${me} superAdmin=${superAdmin}
        session=${session} onDone=${reload} onClose=${() => setDialog(null)} />`}
    ${dialog && dialog.kind === "approve" && html`<${ApproveDialog} user=${dialog.user} onDone=${reload}
        onClose=${() => setDialog(null)} />`}
    ${dialog && dialog.kind === "reset" && html`<${ResetDialog} user=${dialog.user} onDone=${reload}
        onClose=${() => setDialog(null)} />`}
    ${dialog && dialog.kind === "remove" && html`<${RemoveDialog} user=${dialog.user} onDone=${reload}
        onClose=${() => setDialog(null)} />`}
    ${dialog && dialog.kind === "create" && html`<${CreateDialog} onDone=${reload} onClose=${() => setDialog(null)} />`}
    ${dialog && dialog.kind === "invite" && html`<${InviteDialog} session=${session} onDone=${reload}
        onClose=${() => setDialog(null)} />`}
  </div>`;
}

/** Why an action is unavailable on this row, or null when it is allowed. */
export function protection(user, me, action) {
  const own = user.id === me.id;
  if (action === "suspend" || action === "remove") {
    if (own) return "This is your own account: another administrator must do this.";
    if (user.is_first_admin) return "The first administrator is protected: they cannot be suspended or removed.";
  }
  if (action === "disable2fa") {
    if (own) return "Your own 2FA: turn it off from your profile (an administrator cannot lock themself out).";
    if (user.totp_required_by_policy) return "The policy \"Require 2FA for super_admin\" applies to this user: they would have to enroll again at once.";
  }
  return null;
}

function UserRow({ user, me, superAdmin, open, act }) {
  const path = `/api/v1/users/${encodeURIComponent(user.id)}`;
  const name = user.username || user.email;
  const setStatus = (status, words) => act(words, () => api.patch(path, { status }));
  const actions = [];
  const add = (label, run, reason) => actions.push({ label, run, reason });
  if (user.status !== "invited") add("Edit", () => open("edit"));
  if (user.status === "pending") {
    add("Approve", () => open("approve"));
    add("Refuse", () => setStatus("suspended", `${name} was refused (suspended).`));
  }
  if (user.status === "active") {
    add("Suspend", () => setStatus("suspended", `${name} is suspended: their sessions stopped working.`),
        protection(user, me, "suspend"));
  }
  if (user.status === "suspended") add("Reactivate", () => setStatus("active", `${name} is active again.`));
  if (user.status === "active" || user.status === "suspended") add("Reset password", () => open("reset"));
  if (superAdmin && user.status !== "invited") {
    if (!user.totp_enrolled && !user.totp_required) {
      add("Require 2FA", () => act(`${name} must enroll 2FA at their next request.`,
                                   () => api.post(`${path}/2fa/requirement`)));
    }
    if (user.totp_required) {
      add("Cancel 2FA requirement", () => act(`The 2FA requirement of ${name} is lifted.`,
                                              () => api.del(`${path}/2fa/requirement`)));
    }
    if (user.totp_enrolled) {
      add("Disable 2FA", () => act(`2FA of ${name} is off; their recovery codes are gone.`,
                                   () => api.del(`${path}/2fa`)), protection(user, me, "disable2fa"));
    }
  }
  add("Remove", () => open("remove"), protection(user, me, "remove"));

  return html`<tr data-user=${user.username || user.email} data-status=${user.status}>
    <td><span class="name">${fullName(user)}</span>${user.username && html`<br /><small>${user.username}</small>`}
      ${user.id === me.id && html` <small class="tag">you</small>`}
      ${user.is_first_admin && html` <small class="tag">first admin</small>`}</td>
    <td>${user.email}</td>
    <td>${user.role || "—"}</td>
    <td><${StatusBadge} status=${user.status} /></td>
    <td>${when(user.last_login_at)}</td>
    <td>${when(user.created_at)}</td>
    <td>${twoFactorWords(user)}</td>
    <td class="row-actions">
      <details class="menu">
        <summary aria-label=${`Actions for ${name}`}>Actions</summary>
        <ul role="menu">
          ${actions.map((action) => html`<li role="none">
            ${action.reason
              ? html`<button type="button" role="menuitem" disabled title=${action.reason}
                      aria-describedby=${`why-${user.id}-${action.label}`}>${action.label}</button>
                     <small class="why" id=${`why-${user.id}-${action.label}`}>${action.reason}</small>`
              : html`<button type="button" role="menuitem" onClick=${(e) => {
                  e.target.closest("details").open = false; action.run(); }}>${action.label}</button>`}
          </li>`)}
        </ul>
      </details>
    </td>
  </tr>`;
}
