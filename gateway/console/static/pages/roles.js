// Roles (needs admin.rbac): the built-in roles and the tenant's custom ones (GET /api/v1/roles),
// a role's permission matrix (read-only for built-in roles), creating and editing custom roles
// (only permissions the signed-in user holds can be ticked: GET /api/v1/me/permissions), deleting
// them (the API refuses built-in and in-use roles; its reason is shown), and who holds a role in
// the active tenant, with their scope (PUT /api/v1/users/{id}/roles/{tenant_id}).
import {
  api, html, useEffect, useState, useSession, useForm, Field, FormError, SubmitButton, Dialog, ConfirmDialog,
  Alert, ErrorAlert, EmptyState, Loading, Link, navigate, can, SelectField, TextareaField, splitList,
  PermissionMatrix, useCatalogue, useTenantUsers, UserSearch, userLabel, scopeWords, SCOPE_FIELDS,
} from "./roles-kit.js";

const held = (session) => (session.access && session.access.permissions) || [];

export function RolesPage() {
  const [roles, setRoles] = useState(null);
  const [error, setError] = useState(null);
  const [removing, setRemoving] = useState(null);
  const [notice, setNotice] = useState("");
  const [reloads, setReloads] = useState(0);
  useEffect(() => {
    let live = true;
    api.get("/roles").then((answer) => { if (live) setRoles(answer.data.items); },
                           (problem) => { if (live) setError(problem); });
    return () => { live = false; };
  }, [reloads]);

  const builtin = (roles || []).filter((role) => role.builtin);
  const custom = (roles || []).filter((role) => !role.builtin);
  return html`<section class="page roles-page">
    <header class="page-header"><h1>Roles</h1></header>
    <p class="lead">A role is a set of permissions; each user holds one role per tenant, which a scope can narrow
      to some connections, nodes, storages or VMs. Built-in roles are fixed; custom roles are this tenant's own.</p>
    <div class="toolbar"><div class="toolbar-actions">
      <${Link} href="/roles/new" class="button primary">New role<//>
    </div></div>
    ${notice && html`<${Alert} kind="success">${notice}<//>`}
    <${ErrorAlert} error=${error} />
    ${!roles && !error ? html`<${Loading} label="Loading roles…" />` : null}
    ${roles && html`<div class="table-wrap"><table class="table roles-table" aria-label="Roles">
      <thead><tr><th scope="col">Role</th><th scope="col">Description</th><th scope="col">Permissions</th>
        <th scope="col">Users here</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>
        ${[...builtin, ...custom].map((role) => html`<tr key=${role.id} data-role=${role.name}>
          <td><${Link} href=${`/roles/${encodeURIComponent(role.id)}`} class="name">${role.name}<//>
            ${role.builtin ? html` <small class="tag">built-in</small>` : null}
            ${!role.builtin && role.global ? html` <small class="tag">global</small>` : null}</td>
          <td data-label="Description">${role.description || "—"}</td>
          <td data-label="Permissions">${role.permissions.length}</td>
          <td data-label="Users here">${role.user_count}</td>
          <td class="row-actions">
            <${Link} href=${`/roles/${encodeURIComponent(role.id)}`} class="button small">${role.builtin ? "View" : "Edit"}<//>
            <button type="button" class="button small" aria-label=${`Delete ${role.name}`}
                    onClick=${() => { setNotice(""); setRemoving(role); }}>Delete</button>
          </td>
        </tr>`)}
      </tbody>
    </table></div>`}
    ${roles && custom.length === 0 ? html`<${EmptyState} title="No custom roles yet.">
      Use <b>New role</b> to pick permissions in the matrix, then assign the role to users from its page.<//>` : null}
    ${removing && html`<${DeleteRoleDialog} role=${removing} onClose=${() => setRemoving(null)}
        onDone=${() => { setNotice(`The role ${removing.name} is deleted.`); setRemoving(null); setReloads((n) => n + 1); }} />`}
  </section>`;
}

/** Deleting asks the API; a built-in or in-use role is refused and the reason stays shown. */
function DeleteRoleDialog({ role, onClose, onDone }) {
  return html`<${ConfirmDialog} open=${true} title=${`Delete the role ${role.name}?`} confirmLabel="Delete role"
      busyLabel="Deleting…" danger=${true} onClose=${onClose}
      onConfirm=${async () => { await api.del(`/roles/${encodeURIComponent(role.id)}`); onDone(); }}>
    <p>${role.builtin ? "It is a built-in role, part of Gatehouse."
      : role.user_count ? `${role.user_count} user(s) hold it in this tenant: a role can be deleted only once nobody holds it.`
      : "Nobody holds it in this tenant. Deleting cannot be undone."}</p>
  <//>`;
}

/** /roles/new: a custom role of the active tenant, permissions picked in the matrix. */
export function RoleNewPage() {
  const session = useSession();
  const catalogue = useCatalogue();
  const form = useForm({ name: "", description: "", permissions: [] });
  const submit = form.submit(async (values) => {
    const answer = await api.post("/roles", { name: values.name.trim(), description: values.description,
                                              permissions: values.permissions });
    navigate(`/roles/${encodeURIComponent(answer.data.id)}?created=1`);
  });
  form.fields.add("permissions");
  return html`<section class="page roles-page">
    <nav class="crumbs" aria-label="Breadcrumb"><${Link} href="/roles">Roles<//> › New role</nav>
    <h1>New role</h1>
    ${catalogue === undefined ? html`<${Loading} label="Loading permissions…" />` : null}
    ${catalogue instanceof Error ? html`<${ErrorAlert} error=${catalogue} />` : null}
    ${Array.isArray(catalogue) && html`<form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      <div class="field-row">
        <${Field} form=${form} name="name" label="Name" required=${true}
                  hint="Lower-case letters, digits, '.', '_' or '-'; fixed once created." />
        <${Field} form=${form} name="description" label="Description" />
      </div>
      <h2>Permissions</h2>
      <p class="hint">Greyed permissions are ones you do not hold: nobody can grant more than they have.</p>
      <${PermissionMatrix} catalogue=${catalogue} value=${form.values.permissions} held=${held(session)}
          error=${form.errors.permissions} onChange=${(names) => form.set("permissions", names)} />
      <div class="actions">
        <${SubmitButton} form=${form} busyLabel="Creating…">Create role<//>
        <${Link} href="/roles" class="button">Cancel<//>
        <span class="hint">${form.values.permissions.length} permission(s) ticked</span>
      </div>
    </form>`}
  </section>`;
}

/** /roles/:id: the role's matrix (editable for custom roles), who holds it here, assign it. */
export function RolePage({ params, query }) {
  const session = useSession();
  const catalogue = useCatalogue();
  const [role, setRole] = useState(null);
  const [etag, setEtag] = useState(undefined);
  const [error, setError] = useState(null);
  const [reloads, setReloads] = useState(0);
  const [notice, setNotice] = useState(query && query.get("created") ? "The role is created." : "");
  const [removing, setRemoving] = useState(false);
  const path = `/roles/${encodeURIComponent(params.id)}`;
  useEffect(() => {
    let live = true;
    api.get(path).then((answer) => { if (live) { setRole(answer.data); setEtag(answer.etag); } },
                       (problem) => { if (live) setError(problem); });
    return () => { live = false; };
  }, [params.id, reloads]);

  if (error) return html`<section class="page"><${ErrorAlert} error=${error} /><${Link} href="/roles">Back to roles<//></section>`;
  if (!role || catalogue === undefined) return html`<${Loading} label="Loading the role…" />`;
  const mine = held(session);
  const missing = role.permissions.filter((name) => !mine.includes(name));
  return html`<section class="page roles-page">
    <nav class="crumbs" aria-label="Breadcrumb"><${Link} href="/roles">Roles<//> › ${role.name}</nav>
    <header class="page-header"><h1>${role.name}${role.builtin ? html` <small class="tag">built-in</small>` : null}</h1></header>
    ${notice && html`<${Alert} kind="success">${notice}<//>`}
    ${catalogue instanceof Error ? html`<${ErrorAlert} error=${catalogue} />` : null}
    ${role.builtin
      ? html`<p class="lead">${role.description}</p>
          <${Alert} kind="info">Built-in roles are part of Gatehouse: their permissions are fixed. Make a custom role to
            grant another set.<//>
          ${Array.isArray(catalogue) && html`<${PermissionMatrix} catalogue=${catalogue} value=${role.permissions} held=${mine} />`}`
      : Array.isArray(catalogue) && html`<${RoleEditor} key=${role.version} role=${role} etag=${etag} catalogue=${catalogue}
          held=${mine} missing=${missing}
          onSaved=${(saved, tag) => { setRole(saved); setEtag(tag); setNotice("The role is saved."); }}
          onStale=${() => setReloads((n) => n + 1)} />`}
    <${Holders} role=${role} onChanged=${(words) => { setNotice(words); setReloads((n) => n + 1); }} />
    <div class="actions danger-zone">
      <button type="button" class="button" onClick=${() => { setNotice(""); setRemoving(true); }}>Delete role</button>
    </div>
    ${removing && html`<${DeleteRoleDialog} role=${role} onClose=${() => setRemoving(false)}
        onDone=${() => navigate("/roles")} />`}
  </section>`;
}

function RoleEditor({ role, etag, catalogue, held: mine, missing, onSaved, onStale }) {
  const form = useForm({ description: role.description, permissions: role.permissions });
  form.fields.add("permissions");
  const submit = form.submit(async (values) => {
    try {
      const answer = await api.patch(`/roles/${encodeURIComponent(role.id)}`,
                                     { description: values.description, permissions: values.permissions },
                                     { ifMatch: etag });
      onSaved(answer.data, answer.etag);
    } catch (problem) {
      if (problem.status === 412) onStale();
      throw problem;
    }
  });
  return html`<form onSubmit=${submit} novalidate class="panel">
    <${FormError} form=${form} />
    ${missing.length ? html`<${Alert} kind="warning">This role holds ${missing.join(", ")}, which you do not hold:
      only someone who holds every permission of the role can change it.<//>` : null}
    <${TextareaField} form=${form} name="description" label="Description" rows=${2} />
    <h2>Permissions</h2>
    <p class="hint">Greyed permissions are ones you do not hold: nobody can grant more than they have.</p>
    <${PermissionMatrix} catalogue=${catalogue} value=${form.values.permissions} held=${mine}
        error=${form.errors.permissions} onChange=${(names) => form.set("permissions", names)} />
    <div class="actions">
      <${SubmitButton} form=${form} busyLabel="Saving…">Save role<//>
      <span class="hint">${form.values.permissions.length} permission(s) ticked</span>
    </div>
  </form>`;
}

/** Who holds the role in the active tenant (GET /api/v1/users?role=, admin.users), each with their scope. */
function Holders({ role, onChanged }) {
  const session = useSession();
  const [holders, setHolders] = useState(undefined);
  const [dialog, setDialog] = useState(null);  // {user?}
  const [reloads, setReloads] = useState(0);
  const tenant = session.access && session.access.tenant_id;
  const listable = can("admin.users");
  useEffect(() => {
    if (!listable) return undefined;
    let live = true;
    (async () => {
      const users = (await api.get("/users", { role: role.name, limit: 100, sort: "name", order: "asc" })).data.items;
      const scoped = await Promise.all(users.map(async (user) => {
        const roles = (await api.get(`/users/${encodeURIComponent(user.id)}/roles`)).data.items;
        const here = roles.find((entry) => entry.tenant_id === tenant);
        return { user, assignment: here || null };
      }));
      if (live) setHolders(scoped);
    })().catch((problem) => { if (live) setHolders(problem); });
    return () => { live = false; };
  }, [role.name, reloads, tenant]);

  const done = (words) => { setDialog(null); setReloads((n) => n + 1); onChanged(words); };
  return html`<section class="panel holders" aria-labelledby="holders-title">
    <div class="panel-head">
      <h2 id="holders-title">Who holds ${role.name} in this tenant</h2>
      ${role.name !== "super_admin" || (session.access && session.access.super_admin)
        ? html`<button type="button" class="button primary" onClick=${() => setDialog({})}>Assign to a user</button>` : null}
    </div>
    ${!listable ? html`<p class="hint">${role.user_count} user(s). Listing them needs the permission admin.users.</p>` : null}
    ${listable && holders === undefined ? html`<${Loading} label="Loading who holds it…" />` : null}
    ${holders instanceof Error ? html`<${ErrorAlert} error=${holders} />` : null}
    ${Array.isArray(holders) && holders.length === 0 ? html`<${EmptyState} title="Nobody holds this role here.">
      Use <b>Assign to a user</b> to give it to someone of this tenant, optionally narrowed to some storages,
      nodes, connections or VMs.<//>` : null}
    ${Array.isArray(holders) && holders.length > 0 && html`<div class="table-wrap"><table class="table" aria-label=${`Holders of ${role.name}`}>
      <thead><tr><th scope="col">User</th><th scope="col">Scope</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${holders.map(({ user, assignment }) => html`<tr key=${user.id} data-user=${user.username}>
        <td>${userLabel(user)}${assignment && assignment.locked ? html` <small class="tag">first admin</small>` : null}</td>
        <td data-label="Scope">${assignment ? scopeWords(assignment.scope) : "—"}</td>
        <td class="row-actions">${assignment && !assignment.locked ? html`<button type="button" class="button small"
            aria-label=${`Change the scope of ${user.username}`} onClick=${() => setDialog({ user, assignment })}>Change scope</button>` : null}</td>
      </tr>`)}</tbody>
    </table></div>`}
    ${dialog && html`<${AssignDialog} role=${role} tenant=${tenant} user=${dialog.user} assignment=${dialog.assignment}
        onClose=${() => setDialog(null)} onDone=${done} />`}
  </section>`;
}

/** PUT /api/v1/users/{id}/roles/{tenant}: the role, narrowed by a scope (empty lists: everything). */
function AssignDialog({ role, tenant, user, assignment, onClose, onDone }) {
  const [search, setSearch] = useState("");
  const users = useTenantUsers(0, search);
  const scope = (assignment && assignment.scope) || {};
  const form = useForm({
    user_id: user ? user.id : "",
    ...Object.fromEntries(SCOPE_FIELDS.map(([key]) => [key, (scope[key] || []).join(", ")])),
  });
  const submit = form.submit(async (values) => {
    if (!values.user_id) throw Object.assign(new Error("Pick a user."), { fields: { user_id: "pick a user" } });
    const body = { role: role.name, scope: Object.fromEntries(SCOPE_FIELDS.map(([key]) => [key, splitList(values[key])])) };
    await api.put(`/users/${encodeURIComponent(values.user_id)}/roles/${encodeURIComponent(tenant)}`, body);
    const picked = user || (users || []).find((entry) => entry.id === values.user_id);
    onDone(`${picked ? picked.username || picked.email : "The user"} now holds ${role.name} in this tenant.`);
  });
  form.fields.add("scope");  // the API names a scope's problems under `scope`
  return html`<${Dialog} open=${true} title=${user ? `Scope of ${user.username} (${role.name})` : `Assign ${role.name}`}
      onClose=${onClose}>
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      ${user ? null : html`<${UserSearch} value=${search} users=${users}
          onInput=${(words) => { setSearch(words); form.set("user_id", ""); }} />`}
      ${user ? html`<p>${userLabel(user)}</p>` : users === undefined ? html`<${Loading} label="Loading users…" />`
        : users === null ? html`<${Field} form=${form} name="user_id" label="User id"
            hint="Picking from a list needs admin.users; paste the user's id." />`
        : html`<${SelectField} form=${form} name="user_id" label="User"
            hint="Their role in this tenant becomes this one (a user holds one role per tenant).">
            <option value="">Choose a user…</option>
            ${users.filter((entry) => entry.status !== "invited").map((entry) => html`<option value=${entry.id} key=${entry.id}>
              ${userLabel(entry)}${entry.role ? ` — now ${entry.role}` : ""}</option>`)}
          <//>`}
      <fieldset class=${`scope${form.errors.scope ? " has-error" : ""}`}>
        <legend>Scope</legend>
        <p class="hint">Empty means all: leave every box empty to grant the role on everything in the tenant.
          Separate ids with commas or spaces.</p>
        ${SCOPE_FIELDS.map(([key, label, words]) => html`<${Field} key=${key} form=${form} name=${key} label=${label}
            hint=${`Only these ${words}; empty means all.`} />`)}
        ${form.errors.scope ? html`<div class="field-error" role="alert">${form.errors.scope}</div>` : null}
      </fieldset>
      <div class="actions">
        <${SubmitButton} form=${form} busyLabel="Assigning…">${user ? "Save scope" : "Assign role"}<//>
        <button type="button" class="button" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  <//>`;
}
