// Users (needs admin.users), the seeds' Security > Users: the active tenant's users with
// search, sort by any column, status filter (pending users one click away) and server-side
// paging; the row actions that apply to each user; create and invite. The Invitations and
// All tenants tabs live in users-invitations.js and users-all-tenants.js.
import { closeRowMenusOutside } from "../components/rowmenu.js";
import {
  api, html, useEffect, useState, useSession, Link, Alert, ErrorAlert, EmptyState, Loading,
  fullName, when, StatusBadge, twoFactorWords, protection,
} from "./users-kit.js";
import { ApproveDialog, CreateDialog, EditDialog, InviteDialog, RemoveDialog, ResetDialog } from "./users-dialogs.js";

const PAGE_SIZE = 25;
const COLUMNS = [  // [label, sort key of GET /api/v1/users]
  ["Name", "name"], ["Email", "email"], ["Role", "role"], ["Status", "status"],
  ["Last login", "last_login_at"], ["Created", "created_at"], ["2FA", "totp_enrolled"],
];
const STATUS_FILTERS = [["", "All"], ["pending", "Pending"], ["active", "Active"], ["suspended", "Suspended"],
                        ["invited", "Invited"]];

/** The heading and tabs every Users page shares. */
export function UsersTabs({ current }) {
  const session = useSession();
  const tabs = [["/users", "Users"], ["/users/invitations", "Invitations"]];
  if (session.access && session.access.super_admin) tabs.push(["/users/all-tenants", "All tenants"]);
  return html`<header class="page-header"><h1>Users</h1></header>
    <nav class="tabs" aria-label="User administration"><ul>
      ${tabs.map(([path, label]) => html`<li key=${path}>
        <${Link} href=${path} class=${current === path ? "tab active" : "tab"}
                 aria-current=${current === path ? "page" : undefined}>${label}<//></li>`)}
    </ul></nav>`;
}

export function UsersPage({ query: urlQuery }) {
  const session = useSession();
  const me = session.user;
  const superAdmin = Boolean(session.access && session.access.super_admin);
  const [typed, setTyped] = useState((urlQuery && urlQuery.get("q")) || "");
  const [filters, setFilters] = useState({
    q: (urlQuery && urlQuery.get("q")) || "", status: (urlQuery && urlQuery.get("status")) || "",
    sort: "created_at", order: "desc",
  });
  const [cursors, setCursors] = useState([null]);  // the cursor of each page seen: Previous goes back
  const [page, setPage] = useState(null);
  const [pending, setPending] = useState(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);  // what the last row action was refused for
  const [loadError, setLoadError] = useState(null);  // why the list could not be read
  const [dialog, setDialog] = useState(null);  // {kind, user}
  const [notice, setNotice] = useState("");
  const [reloads, setReloads] = useState(0);
  const cursor = cursors[cursors.length - 1];

  useEffect(() => closeRowMenusOutside(), []);

  useEffect(() => {  // search as the user types, a moment after the last key
    const timer = setTimeout(() => {
      if (typed.trim() !== filters.q) {
        setFilters((old) => ({ ...old, q: typed.trim() }));
        setCursors([null]);
      }
    }, 300);
    return () => clearTimeout(timer);
  }, [typed]);

  useEffect(() => {
    let live = true;
    setLoading(true);
    api.get("/users", { ...filters, limit: PAGE_SIZE, cursor }).then(
      (answer) => { if (live) { setPage(answer.data); setLoadError(null); setLoading(false); } },
      (problem) => { if (live) { setLoadError(problem); setLoading(false); } },
    );
    api.get("/users", { status: "pending", limit: 1 }).then(
      (answer) => { if (live) setPending(answer.data.total); }, () => {},
    );
    return () => { live = false; };
  }, [filters, cursor, reloads]);

  const reload = (words) => {
    setNotice(words || "");
    setDialog(null);
    setReloads((count) => count + 1);
  };
  const sortBy = (key) => {
    setFilters((old) => ({ ...old, sort: key, order: old.sort === key && old.order === "asc" ? "desc" : "asc" }));
    setCursors([null]);
  };
  const filterStatus = (status) => {
    setFilters((old) => ({ ...old, status }));
    setCursors([null]);
  };
  const act = async (words, call) => {
    setNotice("");
    setError(null);
    try {
      await call();
      reload(words);
    } catch (problem) {
      setError(problem);
      if (problem.status === 412) setReloads((count) => count + 1);  // show the user as they are now
    }
  };
  const showEveryone = () => {
    setTyped("");
    setFilters((old) => ({ ...old, q: "", status: "" }));
    setCursors([null]);
  };

  const items = (page && page.items) || [];
  const close = () => setDialog(null);
  return html`<section class="page users-page">
    <${UsersTabs} current="/users" />
    <div class="toolbar">
      <div class="field search">
        <label for="user-search">Search users</label>
        <input id="user-search" type="search" placeholder="Name, username or email" value=${typed}
               onInput=${(event) => setTyped(event.currentTarget.value)} />
      </div>
      <div class="chips" role="group" aria-label="Filter by status">
        ${STATUS_FILTERS.map(([status, label]) => html`<button type="button" key=${status || "all"}
            class=${`chip${filters.status === status ? " active" : ""}${status === "pending" && pending ? " attention" : ""}`}
            aria-pressed=${filters.status === status ? "true" : "false"} onClick=${() => filterStatus(status)}>
            ${label}${status === "pending" && pending !== null ? ` (${pending})` : ""}</button>`)}
      </div>
      <div class="toolbar-actions">
        <button type="button" class="button" onClick=${() => setDialog({ kind: "invite" })}>Invite users</button>
        <button type="button" class="button primary" onClick=${() => setDialog({ kind: "create" })}>Create user</button>
      </div>
    </div>
    ${notice && html`<${Alert} kind="success">${notice}<//>`}
    <${ErrorAlert} error=${error} />
    <${ErrorAlert} error=${loadError} />
    <div class="table-wrap">
      <table class="table users-table" aria-busy=${loading ? "true" : "false"} aria-label="Users">
        <thead><tr>
          ${COLUMNS.map(([label, key]) => html`<th scope="col" key=${key}
              aria-sort=${filters.sort === key ? (filters.order === "asc" ? "ascending" : "descending") : "none"}>
            <button type="button" class="sort" onClick=${() => sortBy(key)}>${label}<span aria-hidden="true">${
              filters.sort === key ? (filters.order === "asc" ? " ▲" : " ▼") : ""}</span></button>
          </th>`)}
          <th scope="col"><span class="visually-hidden">Actions</span></th>
        </tr></thead>
        <tbody>
          ${items.map((user) => html`<${UserRow} key=${user.id} user=${user} me=${me} superAdmin=${superAdmin}
              open=${(kind) => setDialog({ kind, user })} act=${act} />`)}
        </tbody>
      </table>
    </div>
    ${loading && !page ? html`<${Loading} label="Loading users…" />` : null}
    ${page && items.length === 0 && (filters.q || filters.status
      ? html`<${EmptyState} title=${`No user matches${filters.q ? ` “${filters.q}”` : ""}${filters.status ? ` with status ${filters.status}` : ""}.`}>
          Check the spelling, or <button type="button" class="link" onClick=${showEveryone}>show everyone</button>.<//>`
      : html`<${EmptyState} title="No users in this tenant yet.">
          <b>Invite users</b> by email (they register through the link), or <b>Create user</b> and hand over the
          password shown once.<//>`)}
    <div class="pager">
      <span class="pager-total">${page ? `${page.total}${page.total_exact === false ? "+" : ""} user${page.total === 1 ? "" : "s"}` : ""}</span>
      <button type="button" class="button" disabled=${cursors.length < 2}
              onClick=${() => setCursors(cursors.slice(0, -1))}>Previous</button>
      <button type="button" class="button" disabled=${!(page && page.next_cursor)}
              onClick=${() => setCursors([...cursors, page.next_cursor])}>Next</button>
    </div>
    ${dialog && dialog.kind === "edit" && html`<${EditDialog} user=${dialog.user} onDone=${reload} onClose=${close} />`}
    ${dialog && dialog.kind === "approve" && html`<${ApproveDialog} user=${dialog.user} onDone=${reload} onClose=${close} />`}
    ${dialog && dialog.kind === "reset" && html`<${ResetDialog} user=${dialog.user} onDone=${reload} onClose=${close} />`}
    ${dialog && dialog.kind === "remove" && html`<${RemoveDialog} user=${dialog.user} onDone=${reload} onClose=${close} />`}
    ${dialog && dialog.kind === "create" && html`<${CreateDialog} onDone=${reload} onClose=${close} />`}
    ${dialog && dialog.kind === "invite" && html`<${InviteDialog} onDone=${reload} onClose=${close} />`}
  </section>`;
}


/** The ETag of a user as listed (its version), for If-Match. */
export function versionOf(user) {
  return user.version ? `"${user.version}"` : undefined;
}

/** The actions that apply to a user, each {label, run} or {label, reason} when protected. */
export function rowActions(user, me, superAdmin, { open, act }) {
  const path = `/users/${encodeURIComponent(user.id)}`;
  const name = user.username || user.email;
  // Based on the row as listed: a change made meanwhile by someone else is refused (412), not overwritten.
  const setStatus = (status, words) => act(words, () => api.patch(path, { status }, { ifMatch: versionOf(user) }));
  const actions = [];
  const add = (label, run, reason = null) => actions.push({ label, run, reason });
  if (user.status !== "invited") add("Edit", () => open("edit"));
  if (user.status === "pending") {
    add("Approve", () => open("approve"));
    add("Refuse", () => setStatus("suspended", `${name} is refused (suspended).`));
  }
  if (user.status === "active") {
    add("Suspend", () => setStatus("suspended", `${name} is suspended: their sessions no longer work.`),
        protection(user, me, "suspend"));
  }
  if (user.status === "suspended") add("Reactivate", () => setStatus("active", `${name} is active again.`));
  if (user.status === "active" || user.status === "suspended") add("Reset password", () => open("reset"));
  if (superAdmin && user.status !== "invited") {
    if (!user.totp_enrolled && !user.totp_required) {
      add("Require 2FA", () => act(`${name} must set up 2FA before anything else.`,
                                   () => api.post(`${path}/2fa/requirement`)));
    }
    if (user.totp_required) {
      add("Cancel 2FA requirement", () => act(`${name} no longer has to use 2FA.`,
                                              () => api.del(`${path}/2fa/requirement`)));
    }
    if (user.totp_enrolled) {
      add("Disable 2FA", () => act(`2FA of ${name} is off; their recovery codes are gone.`,
                                   () => api.del(`${path}/2fa`)), protection(user, me, "disable2fa"));
    }
  }
  add("Remove", () => open("remove"), protection(user, me, "remove"));
  return actions;
}

function UserRow({ user, me, superAdmin, open, act }) {
  const name = user.username || user.email;
  const actions = rowActions(user, me, superAdmin, { open, act });
  const slug = (label) => `${user.id}-${label.toLowerCase().replace(/\W+/g, "-")}`;
  return html`<tr data-user=${name} data-status=${user.status}>
    <td><span class="name">${fullName(user)}</span>${user.username ? html`<br /><small>${user.username}</small>` : null}
      ${me && user.id === me.id ? html` <small class="tag">you</small>` : null}
      ${user.is_first_admin ? html` <small class="tag">first admin</small>` : null}</td>
    <td>${user.email}</td>
    <td>${user.role || "—"}</td>
    <td><${StatusBadge} status=${user.status} /></td>
    <td>${when(user.last_login_at)}</td>
    <td>${when(user.created_at)}</td>
    <td>${twoFactorWords(user)}</td>
    <td class="row-actions">
      <details class="row-menu">
        <summary class="button" aria-label=${`Actions for ${name}`}>Actions</summary>
        <ul>
          ${actions.map((action) => html`<li key=${action.label}>
            ${action.reason
              ? html`<button type="button" class="menu-item" disabled aria-describedby=${`why-${slug(action.label)}`}>${action.label}</button>
                     <small class="why" id=${`why-${slug(action.label)}`}>${action.reason}</small>`
              : html`<button type="button" class="menu-item" onClick=${(event) => {
                  const menu = event.currentTarget.closest("details");
                  menu.open = false;
                  menu.querySelector("summary").focus();  // where focus returns after a dialog
                  action.run();
                }}>${action.label}</button>`}
          </li>`)}
        </ul>
      </details>
    </td>
  </tr>`;
}
