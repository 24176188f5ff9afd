// Users > All tenants (super admins): every user of every tenant (GET /api/v1/users?tenant=*),
// or one tenant's, with each user's tenant assignments and role in each.
import {
  api, html, useEffect, useState, useSession, fullName, when, StatusBadge, twoFactorWords, Alert, ErrorAlert, EmptyState,
  Loading,
} from "./users-kit.js";
import { UsersTabs } from "./users.js";

const PAGE_SIZE = 50;

export function AllTenantsPage() {
  const session = useSession();
  const [tenants, setTenants] = useState({});
  const [tenant, setTenant] = useState("*");
  const [typed, setTyped] = useState("");
  const [q, setQ] = useState("");
  const [status, setStatus] = useState("");
  const [cursors, setCursors] = useState([null]);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    api.get("/tenants", { limit: 200 }).then(
      (answer) => setTenants(Object.fromEntries(answer.data.items.map((item) => [item.id, item.name]))), () => {},
    );
  }, []);
  useEffect(() => {
    const timer = setTimeout(() => { if (typed.trim() !== q) { setQ(typed.trim()); setCursors([null]); } }, 300);
    return () => clearTimeout(timer);
  }, [typed]);
  useEffect(() => {
    let live = true;
    api.get("/users", { tenant, q, status, sort: "name", order: "asc", limit: PAGE_SIZE, cursor }).then(
      (answer) => { if (live) { setPage(answer.data); setError(null); } },
      (problem) => { if (live) setError(problem); },
    );
    return () => { live = false; };
  }, [tenant, q, status, cursor]);

  const items = (page && page.items) || [];
  const tenantName = (id) => tenants[id] || id;
  if (!(session.access && session.access.super_admin)) {
    return html`<section class="page"><${UsersTabs} current="/users/all-tenants" />
      <${Alert} kind="error">Not allowed: only super admins see the users of every tenant.<//></section>`;
  }
  return html`<section class="page all-tenants-page">
    <${UsersTabs} current="/users/all-tenants" />
    <p class="hint">Every user of every tenant, as super admins see them. Tenant administrators only see their own
      tenant's users (the Users tab).</p>
    <div class="toolbar">
      <div class="field search"><label for="all-search">Search</label>
        <input id="all-search" type="search" value=${typed} placeholder="Name, username or email"
               onInput=${(e) => setTyped(e.target.value)} /></div>
      <div class="field"><label for="all-tenant">Tenant</label>
        <select id="all-tenant" value=${tenant} onChange=${(e) => { setTenant(e.target.value); setCursors([null]); }}>
          <option value="*">All tenants</option>
          ${Object.entries(tenants).map(([id, name]) => html`<option value=${id}>${name}</option>`)}
        </select></div>
      <div class="field"><label for="all-status">Status</label>
        <select id="all-status" value=${status} onChange=${(e) => { setStatus(e.target.value); setCursors([null]); }}>
          <option value="">Any</option><option value="pending">Pending</option><option value="active">Active</option>
          <option value="suspended">Suspended</option><option value="invited">Invited</option>
        </select></div>
    </div>
    <${ErrorAlert} error=${error} />
    <div class="table-wrap"><table class="table" aria-label="Users of every tenant">
      <thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Status</th>
        <th scope="col">Tenants and roles</th><th scope="col">Invitation</th><th scope="col">Last login</th><th scope="col">2FA</th></tr></thead>
      <tbody>${items.map((user) => html`<tr key=${user.id} data-user=${user.username || user.email}>
        <td>${fullName(user)}${user.username && html`<br /><small>${user.username}</small>`}</td>
        <td>${user.email}</td>
        <td><${StatusBadge} status=${user.status} /></td>
        <td><ul class="assignments">${(user.tenants || []).map((entry) => html`<li data-tenant=${tenantName(entry.tenant_id)}>
          <b>${tenantName(entry.tenant_id)}</b>: ${entry.role || "no role"}${entry.is_default ? " (default)" : ""}</li>`)}
          ${(user.tenants || []).length === 0 && html`<li>no tenant</li>`}</ul></td>
        <td>${user.invitation_status || "—"}</td>
        <td>${when(user.last_login_at)}</td>
        <td>${twoFactorWords(user)}</td>
      </tr>`)}</tbody>
    </table></div>
    ${!page && !error ? html`<${Loading} label="Loading users…" />` : null}
    ${page && items.length === 0 && html`<${EmptyState} title="No user matches.">Clear the search or pick another tenant.<//>`}
    <div class="pager">
      <span>${page ? `${page.total} user${page.total === 1 ? "" : "s"}` : "Loading…"}</span>
      <button type="button" class="button" disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous</button>
      <button type="button" class="button" disabled=${!(page && page.next_cursor)} onClick=${() => setCursors([...cursors, page.next_cursor])}>Next</button>
    </div>
  </section>`;
}
