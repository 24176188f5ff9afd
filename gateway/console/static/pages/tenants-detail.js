// One tenant (/tenants/:id, needs tenant.view; a tenant the caller does not belong to is the API's
// 404): its members with their role there (add, change the role, remove: admin.users in that
// tenant, as the API decides) and its connections (super admins move them to another tenant).
import {
  api, html, useEffect, useState, useSession, can, useForm, Field, FormError, SubmitButton, Alert, ErrorAlert,
  EmptyState, Loading, ConfirmDialog, Link, SelectField, RoleOptions, useRoles, when, tlsWords,
} from "./connections-kit.js";
import { switchTenant } from "../session.js";
import { MoreRows, appendNextPage } from "../components/paging.js";

export function TenantPage({ params }) {
  const session = useSession();
  const superAdmin = Boolean(session.access && session.access.super_admin);
  const tenantId = params.id;
  const path = `/tenants/${encodeURIComponent(tenantId)}`;
  const [tenant, setTenant] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api.get(path).then((answer) => setTenant(answer.data), setError);
  }, [tenantId]);
  if (error) {
    return html`<section class="page area-tenants"><${Link} href="/tenants" class="back-link">← Tenants<//>
      <${ErrorAlert} error=${error} /></section>`;
  }
  if (!tenant) return html`<${Loading} label="Loading the tenant…" />`;
  const active = session.access && session.access.tenant_id;
  return html`<section class="page tenant-detail area-tenants">
    <${Link} href="/tenants" class="back-link">← Tenants<//>
    <header class="page-header"><h1>${tenant.name}</h1></header>
    ${tenant.description ? html`<p class="lead">${tenant.description}</p>` : null}
    <${Members} tenant=${tenant} />
    ${superAdmin || tenantId === active ? html`<${Connections} tenant=${tenant} superAdmin=${superAdmin} />`
      : html`<${SwitchToSee} tenant=${tenant} />`}
  </section>`;
}

/** An administrator of several tenants reads a tenant's connections while it is the active one
 * (the API refuses `tenant` other than the active tenant but to super admins). */
function SwitchToSee({ tenant }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const change = async () => {
    setBusy(true);
    setError(null);
    try {
      await switchTenant(tenant.id);
    } catch (problem) {
      setError(problem);
      setBusy(false);
    }
  };
  return html`<section aria-labelledby="connections-heading">
    <h2 id="connections-heading">Connections</h2>
    <p class="hint">Switch to this tenant to see its connections.</p>
    <${ErrorAlert} error=${error} />
    <button type="button" class="button" onClick=${change} disabled=${busy} aria-busy=${busy ? "true" : undefined}>
      ${busy ? "Switching…" : `Switch to ${tenant.name}`}</button>
  </section>`;
}

// --- members ---------------------------------------------------------------------------------------

function Members({ tenant }) {
  const session = useSession();
  const superAdmin = Boolean(session.access && session.access.super_admin);
  const roles = useRoles();
  const path = `/tenants/${encodeURIComponent(tenant.id)}/users`;
  const [listing, setListing] = useState(null);  // the GET answer: {items, next_cursor, total}
  const members = listing && listing.items;
  const setMembers = (change) => setListing((old) => ({ ...(old || {}), items: change(old && old.items) }));
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const [removing, setRemoving] = useState(null);
  const [drafts, setDrafts] = useState({});  // user_id -> role chosen, not saved yet
  const [saving, setSaving] = useState(null);  // user_id
  const [reloads, setReloads] = useState(0);
  const reload = (words) => { setNotice(words || ""); setReloads((count) => count + 1); };
  // rbac applies a member's role from tenancy's event, moments after the answer: the answer's role is shown now
  const joined = (membership, words) => {
    setNotice(words);
    setMembers((old) => {
      const others = (old || []).filter((member) => member.user_id !== membership.user_id);
      return [...others, membership].sort((a, b) => (a.username || "").localeCompare(b.username || ""));
    });
  };
  // admin.users in this tenant decides (the server checks): offered in the active tenant when held, and to super admins
  const manage = superAdmin || (can("admin.users") && session.access && session.access.tenant_id === tenant.id);

  useEffect(() => {
    let live = true;
    api.get(path, { limit: 200 }).then((answer) => { if (live) setListing(answer.data); },
                                       (problem) => { if (live) setError(problem); });
    return () => { live = false; };
  }, [reloads]);

  // a role changes only with the row's Save button (arrow keys on a closed select fire change)
  const draft = (member) => (member.user_id in drafts ? drafts[member.user_id] : member.role || "");
  const choose = (member, role) => setDrafts((old) => ({ ...old, [member.user_id]: role }));
  const forget = (member) => setDrafts((old) => {
    const rest = { ...old };
    delete rest[member.user_id];
    return rest;
  });
  const setRole = async (member) => {
    const role = draft(member);
    setError(null);
    setNotice("");
    setSaving(member.user_id);
    try {
      const answer = await api.put(`${path}/${encodeURIComponent(member.user_id)}`, { role });
      forget(member);
      joined({ ...member, ...answer.data }, `${member.username} is ${role} in ${tenant.name}.`);
    } catch (problem) {
      setError(problem);  // the choice stays in the select: Save again or put it back
    } finally {
      setSaving(null);
    }
  };

  return html`<section aria-labelledby="members-heading">
    <h2 id="members-heading">Members</h2>
    ${notice ? html`<${Alert} kind="success">${notice}<//>` : null}
    <${ErrorAlert} error=${error} />
    ${manage ? html`<${AddMember} tenant=${tenant} roles=${roles} superAdmin=${superAdmin} onDone=${joined} />` : null}
    ${members === null && !error ? html`<${Loading} label="Loading members…" />` : null}
    ${members && members.length === 0 ? html`<${EmptyState} title=${`${tenant.name} has no members yet.`}>
        ${manage ? "Add a user above with the role they get here." : "An administrator of this tenant adds them."}<//>` : null}
    ${members && members.length > 0 ? html`<div class="table-wrap"><table class="table members-table" aria-label="Members">
      <thead><tr><th scope="col">User</th><th scope="col">Role here</th><th scope="col">Sessions start here</th>
        <th scope="col">Member since</th>${manage ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}</tr></thead>
      <tbody>${members.map((member) => html`<tr key=${member.user_id} data-member=${member.username}>
        <td>${member.username || member.user_id}</td>
        <td>${manage ? html`<label class="visually-hidden" for=${`role-${member.user_id}`}>Role of ${member.username}</label>
            <span class="role-edit"><select id=${`role-${member.user_id}`} value=${draft(member)}
                    onChange=${(event) => choose(member, event.currentTarget.value)}>
              ${member.role ? null : html`<option value="">(no role)</option>`}
              <${RoleOptions} roles=${roles} current=${member.role} />
            </select>
            ${draft(member) !== (member.role || "") ? html`<button type="button" class="button small primary"
                aria-label=${`Save role of ${member.username}`} disabled=${saving === member.user_id || !draft(member)}
                aria-busy=${saving === member.user_id ? "true" : undefined}
                onClick=${() => setRole(member)}>${saving === member.user_id ? "Saving…" : "Save"}</button>
              <button type="button" class="button small" aria-label=${`Keep the role of ${member.username}`}
                onClick=${() => forget(member)}>Cancel</button>` : null}</span>` : member.role || "—"}</td>
        <td>${member.is_default ? "Yes" : "No"}</td>
        <td>${when(member.created_at)}</td>
        ${manage ? html`<td class="row-actions"><button type="button" class="button small"
            aria-label=${`Remove ${member.username} from ${tenant.name}`} onClick=${() => setRemoving(member)}>Remove</button></td>` : null}
      </tr>`)}</tbody>
    </table></div>` : null}
    <${MoreRows} page=${listing} what="members" onMore=${async () => setListing(await appendNextPage(path, { limit: 200 }, listing))} />
    ${removing ? html`<${ConfirmDialog} open title=${`Remove ${removing.username} from ${tenant.name}?`}
        confirmLabel="Remove from tenant" busyLabel="Removing…" danger onClose=${() => setRemoving(null)}
        onConfirm=${async () => {
          await api.del(`${path}/${encodeURIComponent(removing.user_id)}`);
          reload(`${removing.username} is no longer a member of ${tenant.name}.`);
        }}>
        <p>They lose their role in ${tenant.name} and see nothing of it any more. Their account and their other
          tenants stay. A user's last tenant cannot be taken away.</p><//>` : null}
  </section>`;
}

/** Adds a user the caller can see (super admins: anyone) with a role, by username or email. */
function AddMember({ tenant, roles, superAdmin, onDone }) {
  const form = useForm({ login: "", role: "viewer", default: false });
  const add = form.submit(async (values) => {
    const login = values.login.trim();
    if (!login) throw Object.assign(new Error("Check the highlighted fields."), { fields: { login: "Type a username or email." } });
    const found = (await api.get("/users", { q: login, limit: 20, ...(superAdmin ? { tenant: "*" } : {}) })).data.items;
    const user = found.find((item) => [item.username, item.email].map((v) => (v || "").toLowerCase()).includes(login.toLowerCase()));
    if (!user) {
      throw Object.assign(new Error("Check the highlighted fields."),
                          { fields: { login: `No user ${login} that you can see: check the spelling, or create them on the Users page.` } });
    }
    const answer = await api.put(`/tenants/${encodeURIComponent(tenant.id)}/users/${encodeURIComponent(user.id)}`,
                                 { role: values.role, default: values.default });
    form.setValues({ login: "", role: values.role, default: false });
    onDone(answer.data, `${user.username} is a member of ${tenant.name} as ${values.role}.`);
  });
  return html`<form class="inline-form add-member" onSubmit=${add} novalidate aria-label="Add a member">
    <${FormError} form=${form} />
    <${Field} form=${form} name="login" label="Username or email" autocomplete="off" />
    <${SelectField} form=${form} name="role" label="Role in this tenant"><${RoleOptions} roles=${roles} current=${form.values.role} /><//>
    <label class="check"><input type="checkbox" checked=${form.values.default}
      onChange=${(event) => form.set("default", event.currentTarget.checked)} /> Their sessions start here</label>
    <${SubmitButton} form=${form} busyLabel="Adding…">Add member<//>
  </form>`;
}

// --- connections -------------------------------------------------------------------------------------

function Connections({ tenant, superAdmin }) {
  const [items, setItems] = useState(null);
  const [tenants, setTenants] = useState([]);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const [moving, setMoving] = useState(null);  // {connection, to}
  const [reloads, setReloads] = useState(0);
  useEffect(() => {
    let live = true;
    api.get("/connections", { limit: 200, ...(superAdmin ? { tenant: tenant.id } : {}) }).then(
      (answer) => { if (live) setItems(answer.data.items); }, (problem) => { if (live) setError(problem); });
    if (superAdmin) api.get("/tenants", { limit: 200 }).then((answer) => { if (live) setTenants(answer.data.items); }, () => {});
    return () => { live = false; };
  }, [reloads]);
  const others = tenants.filter((other) => other.id !== tenant.id);
  const target = (id) => others.find((other) => other.id === id);

  return html`<section aria-labelledby="connections-heading">
    <h2 id="connections-heading">Connections</h2>
    ${notice ? html`<${Alert} kind="success">${notice}<//>` : null}
    <${ErrorAlert} error=${error} />
    ${items === null && !error ? html`<${Loading} label="Loading connections…" />` : null}
    ${items && items.length === 0 ? html`<${EmptyState} title=${`${tenant.name} has no connection.`}>
        Add one on the Connections page while ${tenant.name} is the active tenant${superAdmin ? ", or move one here from another tenant" : ""}.<//>` : null}
    ${items && items.length > 0 ? html`<div class="table-wrap"><table class="table tenant-connections" aria-label=${`Connections of ${tenant.name}`}>
      <thead><tr><th scope="col">Name</th><th scope="col">Address</th><th scope="col">TLS</th>
        ${superAdmin && others.length ? html`<th scope="col">Move to tenant</th>` : null}</tr></thead>
      <tbody>${items.map((connection) => html`<tr key=${connection.id} data-connection=${connection.name}>
        <td>${connection.name}</td><td><code>${connection.url}</code></td><td>${tlsWords(connection)}</td>
        ${superAdmin && others.length ? html`<td><label class="visually-hidden" for=${`move-${connection.id}`}>Move ${connection.name} to</label>
          <select id=${`move-${connection.id}`} value="" onChange=${(event) => {
            if (event.currentTarget.value) setMoving({ connection, to: event.currentTarget.value });
          }}>
            <option value="">Choose a tenant…</option>
            ${others.map((other) => html`<option value=${other.id} key=${other.id}>${other.name}</option>`)}
          </select></td>` : null}
      </tr>`)}</tbody>
    </table></div>` : null}
    ${moving ? html`<${ConfirmDialog} open title=${`Move ${moving.connection.name} to ${target(moving.to).name}?`}
        confirmLabel="Move connection" busyLabel="Moving…" onClose=${() => setMoving(null)}
        onConfirm=${async () => {
          await api.post(`/connections/${encodeURIComponent(moving.connection.id)}/reassign`, { tenant_id: moving.to });
          setNotice(`${moving.connection.name} now belongs to ${target(moving.to).name}.`);
          setReloads((count) => count + 1);
        }}>
        <p>${target(moving.to).name} gets this connection: its members' rights are synced to it from now on, and
          ${tenant.name}'s users lose theirs there. The audit trail records the move in both tenants.</p><//>` : null}
  </section>`;
}
