// Tenants (needs tenant.view): whether multi-tenancy is on (super admins turn it on, after a
// confirmation saying what happens), the tenants the API shows the caller (super admins: all;
// others: theirs), and for super admins create, rename/describe and delete. One tenant's members
// and connections are on its own page (tenants-detail.js).
import {
  api, html, useEffect, useState, useSession, can, useForm, Field, FormError, SubmitButton, Dialog, Alert,
  ErrorAlert, EmptyState, Loading, ConfirmDialog, Link, TextareaField,
} from "./connections-kit.js";
import { load as reloadSession } from "../session.js";
import { MoreRows, appendNextPage } from "../components/paging.js";

export function TenantsPage() {
  const session = useSession();
  const superAdmin = Boolean(session.access && session.access.super_admin);
  const [status, setStatus] = useState(null);
  const [listing, setListing] = useState(null);  // the GET /tenants answer: {items, next_cursor, total}
  const tenants = listing && listing.items;
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const [dialog, setDialog] = useState(null);  // {kind, tenant}
  const [reloads, setReloads] = useState(0);

  useEffect(() => {
    let live = true;
    api.get("/tenancy").then(async (answer) => {
      const list = answer.data.enabled ? (await api.get("/tenants", { limit: 200 })).data : { items: [] };
      if (live) { setStatus(answer.data); setListing(list); setError(null); }
    }).catch((problem) => { if (live) setError(problem); });
    return () => { live = false; };
  }, [reloads]);

  const done = async (words) => {
    setDialog(null);
    setNotice(words || "");
    setReloads((count) => count + 1);
    await reloadSession().catch(() => {});  // the frame's tenant selector shows new and removed tenants
  };
  const enable = async () => {
    await api.post("/tenancy/enable");
    await done("Multi-tenancy is on: everything that existed is in the tenant default. Create tenants now.");
  };
  const remove = async (tenant) => {
    await api.del(`/tenants/${encodeURIComponent(tenant.id)}`);
    await done(`${tenant.name} is deleted.`);
  };

  if (error) return html`<section class="page area-tenants"><header class="page-header"><h1>Tenants</h1></header>
    <${ErrorAlert} error=${error} /></section>`;
  if (!status || !tenants) return html`<${Loading} label="Loading tenants…" />`;
  const close = () => setDialog(null);
  return html`<section class="page tenants-page area-tenants">
    <header class="page-header"><h1>Tenants</h1></header>
    ${notice ? html`<${Alert} kind="success">${notice}<//>` : null}
    ${!status.enabled ? html`<div class="tenancy-off">
        <h2>Multi-tenancy is off</h2>
        <p>Every user and every Proxmox VE connection belongs to one organisation. Turn multi-tenancy on to keep
          several customers or departments apart: each tenant has its own users, roles and connections, and sees
          nothing of the others.</p>
        ${superAdmin ? html`<button type="button" class="button primary" onClick=${() => setDialog({ kind: "enable" })}>
            Enable multi-tenancy</button>` : html`<p class="hint">A super admin turns it on.</p>`}
      </div>` : html`
      <p class="lead">${superAdmin ? "Every tenant of the platform." : "The tenants you belong to."}${" "}
        Open one to see its members and connections.</p>
      ${superAdmin ? html`<div class="toolbar"><div class="toolbar-actions">
        <button type="button" class="button primary" onClick=${() => setDialog({ kind: "create" })}>Create tenant</button>
      </div></div>` : null}
      ${tenants.length === 0 ? html`<${EmptyState} title="No tenant to show.">You belong to no tenant yet: ask a super admin.<//>` : null}
      ${tenants.length > 0 ? html`<div class="table-wrap"><table class="table tenants-table" aria-label="Tenants">
        <thead><tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col">Users</th>
          <th scope="col">Connections</th>${can("tenant.manage") ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}</tr></thead>
        <tbody>${tenants.map((tenant) => html`<tr key=${tenant.id} data-tenant=${tenant.name}>
          <td><${Link} href=${`/tenants/${encodeURIComponent(tenant.id)}`}>${tenant.name}<//>
            ${tenant.is_default ? html` <small class="tag">default</small>` : null}</td>
          <td>${tenant.description || "—"}</td>
          <td>${tenant.user_count}</td>
          <td>${tenant.connection_count}</td>
          ${can("tenant.manage") ? html`<td class="row-actions">
            <button type="button" class="button small" aria-label=${`Edit ${tenant.name}`}
                    onClick=${() => setDialog({ kind: "edit", tenant })}>Edit</button>
            ${superAdmin && !tenant.is_default ? html`<button type="button" class="button small"
                aria-label=${`Delete ${tenant.name}`} onClick=${() => setDialog({ kind: "delete", tenant })}>Delete</button>` : null}
          </td>` : null}
        </tr>`)}</tbody>
      </table></div>` : null}
      <${MoreRows} page=${listing} what="tenants"
        onMore=${async () => setListing(await appendNextPage("/tenants", { limit: 200 }, listing))} />`}
    ${dialog && dialog.kind === "enable" && html`<${ConfirmDialog} open title="Enable multi-tenancy?"
        confirmLabel="Enable multi-tenancy" busyLabel="Enabling…" onConfirm=${enable} onClose=${close}>
        <p>A tenant named <b>default</b> is created and takes <b>every existing user and every existing
          connection</b>, with the roles they have now: nothing changes for anyone until you create other tenants
          and move users and connections there.</p>
        <p>Multi-tenancy can be turned off again only while <b>default</b> is the only tenant.</p><//>`}
    ${dialog && (dialog.kind === "create" || dialog.kind === "edit") && html`<${TenantDialog}
        tenant=${dialog.tenant} onDone=${done} onClose=${close} />`}
    ${dialog && dialog.kind === "delete" && html`<${ConfirmDialog} open title=${`Delete ${dialog.tenant.name}?`}
        confirmLabel=${`Delete ${dialog.tenant.name}`} busyLabel="Deleting…" danger
        onConfirm=${() => remove(dialog.tenant)} onClose=${close}>
        <p>Its members lose their role there and its custom roles go; a user whose only tenant it was is left
          without one until assigned elsewhere. A tenant that still owns connections cannot be deleted: move
          them to another tenant first (on the tenant's page).</p><//>`}
  </section>`;
}

function TenantDialog({ tenant, onDone, onClose }) {
  const form = useForm({ name: tenant ? tenant.name : "", description: tenant ? tenant.description || "" : "" });
  const save = form.submit(async (values) => {
    if (!tenant) {
      const answer = await api.post("/tenants", { name: values.name, description: values.description });
      await onDone(`${answer.data.name} is created. Open it to add members.`);
      return;
    }
    const body = {};
    if (values.name !== tenant.name) body.name = values.name;
    if (values.description !== (tenant.description || "")) body.description = values.description;
    const answer = await api.patch(`/tenants/${encodeURIComponent(tenant.id)}`, body,
                                   { ifMatch: tenant.version ? `"${tenant.version}"` : undefined });
    await onDone(`${answer.data.name} is saved.`);
  });
  return html`<${Dialog} open title=${tenant ? `Edit ${tenant.name}` : "Create tenant"} onClose=${onClose}>
    <form onSubmit=${save} novalidate>
      <${FormError} form=${form} />
      <${Field} form=${form} name="name" label="Name" required autofocus hint="Unique, whatever the case." />
      <${TextareaField} form=${form} name="description" label="Description" rows=${3} />
      <div class="dialog-footer">
        <button type="button" class="button" onClick=${onClose}>Cancel</button>
        <${SubmitButton} form=${form} busyLabel="Saving…">${tenant ? "Save changes" : "Create tenant"}<//>
      </div>
    </form>
  <//>`;
}
