// Groups (needs admin.rbac): the LDAP posixGroups the active tenant sees (its own and the
// platform-wide ones, GET /api/v1/groups), creating them (the next free GID suggested by
// GET /api/v1/groups/next-gid; a taken one is refused and the API names the holder when this
// tenant sees it), the Administrator flag and what it grants, members added from the tenant's
// users and removed. ldapusers and sysadmins are built-in; platform-wide groups change by super
// admins only (the API refuses anyone else; the page hides what would be refused).
import {
  api, html, useEffect, useState, useSession, useForm, Field, FormError, SubmitButton, Dialog, ConfirmDialog,
  Alert, ErrorAlert, EmptyState, Loading, Link, navigate, SelectField, useTenantUsers, UserSearch, userLabel, when,
} from "./roles-kit.js";
import { MoreRows, appendNextPage } from "../components/paging.js";

/** What an administrator group grants, said wherever the flag can be set. */
export function AdminWarning() {
  return html`<div class="alert alert-warning admin-warning">
    <b>An administrator group grants full administration.</b> Its members count as super admins in Gatehouse (every
    permission in every tenant), are Administrators on every Proxmox VE path, and the directory's hosts give such
    groups (like <code>sysadmins</code>) sudo. Only super admins can create one or change who is in it.
  </div>`;
}

function superAdmin(session) {
  return Boolean(session.access && session.access.super_admin);
}

/** Why this group's fields or members cannot change for the signed-in user, or null. */
function locked(group, session) {
  if (superAdmin(session)) return null;
  if (group.builtin) return "Built-in group: only a super admin changes its members.";
  if (group.platform) return "Platform-wide group: only a super admin changes it or its members.";
  if (group.is_admin) return "Administrator group: only a super admin changes it or its members.";
  return null;
}

export function GroupsPage() {
  const session = useSession();
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [dialog, setDialog] = useState(null);  // {kind: "create"|"edit"|"delete", group}
  const [notice, setNotice] = useState("");
  const [reloads, setReloads] = useState(0);
  useEffect(() => {
    let live = true;
    api.get("/groups", { limit: 200 }).then((answer) => { if (live) setPage(answer.data); },
                                            (problem) => { if (live) setError(problem); });
    return () => { live = false; };
  }, [reloads]);
  const done = (words) => { setNotice(words); setDialog(null); setReloads((n) => n + 1); };
  const items = (page && page.items) || [];
  return html`<section class="page groups-page">
    <header class="page-header"><h1>Groups</h1></header>
    <p class="lead">LDAP groups (posixGroups) of this tenant, mirrored to the directory and to the tenant's Proxmox
      VE. The built-in <code>ldapusers</code> (everyone's primary group) and <code>sysadmins</code> are platform-wide.</p>
    <div class="toolbar"><div class="toolbar-actions">
      <button type="button" class="button primary" onClick=${() => { setNotice(""); setDialog({ kind: "create" }); }}>Create group</button>
    </div></div>
    ${notice && html`<${Alert} kind="success">${notice}<//>`}
    <${ErrorAlert} error=${error} />
    ${!page && !error ? html`<${Loading} label="Loading groups…" />` : null}
    ${page && html`<div class="table-wrap"><table class="table groups-table" aria-label="Groups">
      <thead><tr><th scope="col">CN</th><th scope="col">GID</th><th scope="col">Description</th>
        <th scope="col">Administrator</th><th scope="col">Members</th>
        <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${items.map((group) => {
        const why = locked(group, session);
        return html`<tr key=${group.id} data-group=${group.cn}>
          <td><${Link} href=${`/groups/${encodeURIComponent(group.id)}`} class="name">${group.cn}<//>
            ${group.builtin ? html` <small class="tag">built-in</small>` : null}
            ${group.platform && !group.builtin ? html` <small class="tag">platform-wide</small>` : null}</td>
          <td data-label="GID">${group.gid_number}</td>
          <td data-label="Description">${group.description || "—"}</td>
          <td data-label="Administrator">${group.is_admin ? html`<span class="badge admin-badge">Administrator</span>` : "No"}</td>
          <td data-label="Members">${group.member_count}</td>
          <td class="row-actions">
            <${Link} href=${`/groups/${encodeURIComponent(group.id)}`} class="button small"
                     aria-label=${`Members of ${group.cn}`}>Members<//>
            ${why || group.builtin ? null : html`
              <button type="button" class="button small" aria-label=${`Edit ${group.cn}`}
                      onClick=${() => { setNotice(""); setDialog({ kind: "edit", group }); }}>Edit</button>
              <button type="button" class="button small" aria-label=${`Delete ${group.cn}`}
                      onClick=${() => { setNotice(""); setDialog({ kind: "delete", group }); }}>Delete</button>`}
          </td>
        </tr>`;
      })}</tbody>
    </table></div>`}
    <${MoreRows} page=${page} what="groups" onMore=${async () => setPage(await appendNextPage("/groups", { limit: 200 }, page))} />
    ${page && items.every((group) => group.platform) ? html`<${EmptyState} title="This tenant has no groups of its own yet.">
      Use <b>Create group</b>: the next free GID is suggested. Then add members from the group's page.<//>` : null}
    ${dialog && dialog.kind === "create" && html`<${GroupDialog} onClose=${() => setDialog(null)}
        onDone=${(group) => done(`The group ${group.cn} is created with GID ${group.gid_number}.`)} />`}
    ${dialog && dialog.kind === "edit" && html`<${GroupDialog} group=${dialog.group} onClose=${() => setDialog(null)}
        onDone=${(group) => done(`The group ${group.cn} is saved.`)} />`}
    ${dialog && dialog.kind === "delete" && html`<${ConfirmDialog} open=${true} title=${`Delete the group ${dialog.group.cn}?`}
        confirmLabel="Delete group" busyLabel="Deleting…" danger=${true} onClose=${() => setDialog(null)}
        onConfirm=${async () => {
          await api.del(`/groups/${encodeURIComponent(dialog.group.id)}`);
          done(`The group ${dialog.group.cn} is deleted.`);
        }}>
      <p>Its ${dialog.group.member_count} member(s) leave it; the directory and Proxmox VE drop it at the next sync.
        Files owned by GID ${dialog.group.gid_number} keep that number.</p>
    <//>`}
  </section>`;
}

/** Create (no `group`) or edit a group; creating suggests the next free GID. */
function GroupDialog({ group, onClose, onDone }) {
  const session = useSession();
  const [range, setRange] = useState(null);
  const form = useForm(group
    ? { cn: group.cn, gid_number: String(group.gid_number), description: group.description, is_admin: group.is_admin }
    : { cn: "", gid_number: "", description: "", is_admin: false, platform: false });
  useEffect(() => {
    if (group) return undefined;
    let live = true;
    api.get("/groups/next-gid").then((answer) => {
      if (!live) return;
      setRange(answer.data);
      if (answer.data.gid_number !== null) {
        form.setValues((old) => (old.gid_number ? old : { ...old, gid_number: String(answer.data.gid_number) }));
      }
    }, () => {});
    return () => { live = false; };
  }, []);
  const submit = form.submit(async (values) => {
    const gid = values.gid_number.trim();
    if (gid && !/^\d+$/.test(gid)) {
      throw Object.assign(new Error("Check the GID."), { fields: { gid_number: "a whole number" } });
    }
    const body = { cn: values.cn.trim(), description: values.description, is_admin: Boolean(values.is_admin) };
    if (gid) body.gid_number = Number(gid);
    if (group) {
      const changes = Object.fromEntries(Object.entries(body).filter(([key, value]) => value !== group[key]));
      onDone((await api.patch(`/groups/${encodeURIComponent(group.id)}`, changes)).data);
    } else {
      if (values.platform) body.platform = true;
      onDone((await api.post("/groups", body)).data);
    }
  });
  const su = superAdmin(session);
  form.fields.add("is_admin");
  form.fields.add("platform");
  const gidHint = range
    ? (range.gid_number === null ? `Every GID of ${range.gid_min}–${range.gid_max} is taken.`
      : `Suggested: ${range.gid_number}, the next free GID (range ${range.gid_min}–${range.gid_max}). GIDs are unique in the whole directory.`)
    : "Unique in the whole directory; empty: the next free one.";
  return html`<${Dialog} open=${true} title=${group ? `Edit the group ${group.cn}` : "Create group"} onClose=${onClose}>
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      <div class="grid two">
        <${Field} form=${form} name="cn" label="CN (group name)" required=${true}
                  hint="Lower-case letters, digits, '_' or '-'; the group's name in LDAP and Proxmox VE." />
        <${Field} form=${form} name="gid_number" label="GID" inputMode="numeric" hint=${group ? "Unique in the whole directory." : gidHint} />
      </div>
      <${Field} form=${form} name="description" label="Description" />
      ${su || form.values.is_admin ? html`<div class=${`field check-field${form.errors.is_admin ? " has-error" : ""}`}>
        <label class="check"><input type="checkbox" checked=${Boolean(form.values.is_admin)} disabled=${!su}
          onChange=${(event) => form.set("is_admin", event.currentTarget.checked)} /> Administrator group</label>
        ${form.errors.is_admin ? html`<div class="field-error">${form.errors.is_admin}</div>` : null}
      </div>` : html`<p class="hint">Administrator groups (full administration) are made by super admins only.</p>`}
      ${form.values.is_admin ? html`<${AdminWarning} />` : null}
      ${!group && su ? html`<div class="field check-field">
        <label class="check"><input type="checkbox" checked=${Boolean(form.values.platform)}
          onChange=${(event) => form.set("platform", event.currentTarget.checked)} /> Platform-wide (seen by every tenant)</label>
        ${form.errors.platform ? html`<div class="field-error">${form.errors.platform}</div>` : null}
      </div>` : null}
      <div class="actions">
        <${SubmitButton} form=${form} busyLabel=${group ? "Saving…" : "Creating…"}>${group ? "Save group" : "Create group"}<//>
        <button type="button" class="button" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  <//>`;
}

/** /groups/:id: the group and its members; add members from the tenant's users, remove them. */
export function GroupPage({ params }) {
  const session = useSession();
  const [group, setGroup] = useState(null);
  const [listing, setListing] = useState(null);  // GET .../members: {items, next_cursor, total}
  const members = listing && listing.items;
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const [removing, setRemoving] = useState(null);
  const [reloads, setReloads] = useState(0);
  const [search, setSearch] = useState("");
  const users = useTenantUsers(reloads, search);
  const path = `/groups/${encodeURIComponent(params.id)}`;
  useEffect(() => {
    let live = true;
    Promise.all([api.get(path), api.get(`${path}/members`, { limit: 200 })]).then(([one, list]) => {
      if (live) { setGroup(one.data); setListing(list.data); }
    }, (problem) => { if (live) setError(problem); });
    return () => { live = false; };
  }, [params.id, reloads]);
  const form = useForm({ user_id: "" });
  const add = form.submit(async (values) => {
    if (!values.user_id) throw Object.assign(new Error("Pick a user."), { fields: { user_id: "pick a user" } });
    const answer = await api.post(`${path}/members`, { user_id: values.user_id });
    form.set("user_id", "");
    setNotice(`${answer.data.username} is ${answer.status === 201 ? "now" : "already"} a member of ${group.cn}.`);
    setReloads((n) => n + 1);
  });

  if (error) return html`<section class="page"><${ErrorAlert} error=${error} /><${Link} href="/groups">Back to groups<//></section>`;
  if (!group || !members) return html`<${Loading} label="Loading the group…" />`;
  const why = locked(group, session);
  const inside = new Set(members.map((member) => member.user_id));
  const candidates = (users || []).filter((user) => !inside.has(user.id) && user.status !== "invited");
  return html`<section class="page groups-page">
    <nav class="crumbs" aria-label="Breadcrumb"><${Link} href="/groups">Groups<//> › ${group.cn}</nav>
    <header class="page-header"><h1>${group.cn}
      ${group.builtin ? html` <small class="tag">built-in</small>` : null}
      ${group.is_admin ? html` <span class="badge admin-badge">Administrator</span>` : null}</h1></header>
    <dl class="facts">
      <dt>GID</dt><dd>${group.gid_number}</dd>
      <dt>Description</dt><dd>${group.description || "—"}</dd>
      <dt>Belongs to</dt><dd>${group.platform ? "Every tenant (platform-wide)" : "This tenant"}</dd>
      <dt>Created</dt><dd>${when(group.created_at)}</dd>
    </dl>
    ${group.is_admin ? html`<${AdminWarning} />` : null}
    ${why ? html`<${Alert} kind="info">${why}<//>` : null}
    ${notice && html`<${Alert} kind="success">${notice}<//>`}
    <section class="panel" aria-labelledby="members-title">
      <h2 id="members-title">Members${group.platform ? " of this tenant" : ""} (${listing.total ?? members.length})</h2>
      ${why ? null : users === null ? html`<p class="hint">Picking members needs the permission admin.users.</p>`
        : html`<form class="add-member" onSubmit=${add} novalidate>
          <${FormError} form=${form} />
          <${UserSearch} value=${search} users=${users} onInput=${(words) => { setSearch(words); form.set("user_id", ""); }} />
          <${SelectField} form=${form} name="user_id" label="Add a user of this tenant" disabled=${users === undefined}>
            <option value="">${users === undefined ? "Loading users…" : candidates.length ? "Choose a user…" : "Everyone is already a member"}</option>
            ${candidates.map((user) => html`<option value=${user.id} key=${user.id}>${userLabel(user)}</option>`)}
          <//>
          <${SubmitButton} form=${form} busyLabel="Adding…">Add member<//>
        </form>`}
      ${members.length === 0 ? html`<${EmptyState} title="No members yet.">
          ${why ? "A super admin adds them." : "Pick a user of this tenant above and use Add member."}<//>`
        : html`<div class="table-wrap"><table class="table" aria-label=${`Members of ${group.cn}`}>
          <thead><tr><th scope="col">Username</th><th scope="col">Added</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>${members.map((member) => html`<tr key=${member.user_id} data-member=${member.username}>
            <td>${member.username || member.user_id}</td><td data-label="Added">${when(member.added_at)}</td>
            <td class="row-actions">${why ? null : html`<button type="button" class="button small"
              aria-label=${`Remove ${member.username} from ${group.cn}`}
              onClick=${() => { setNotice(""); setRemoving(member); }}>Remove</button>`}</td>
          </tr>`)}</tbody>
        </table></div>`}
      <${MoreRows} page=${listing} what="members"
        onMore=${async () => setListing(await appendNextPage(`${path}/members`, { limit: 200 }, listing))} />
    </section>
    ${removing && html`<${ConfirmDialog} open=${true} title=${`Remove ${removing.username} from ${group.cn}?`}
        confirmLabel="Remove member" busyLabel="Removing…" danger=${true} onClose=${() => setRemoving(null)}
        onConfirm=${async () => {
          await api.del(`${path}/members/${encodeURIComponent(removing.user_id)}`);
          setNotice(`${removing.username} is no longer a member of ${group.cn}.`);
          setReloads((n) => n + 1);
        }}>
      <p>They lose the group in the directory and in Proxmox VE at the next sync.</p>
    <//>`}
    <p><button type="button" class="link" onClick=${() => navigate("/groups")}>Back to groups</button></p>
  </section>`;
}
