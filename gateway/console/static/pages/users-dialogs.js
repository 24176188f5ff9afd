// The dialogs of the Users page: edit (If-Match; a 412 shows the current values), approve
// with groups, reset password, remove, create (password shown once) and invite. Each keeps
// what was typed when the API refuses it and shows every error next to the field it names.
import {
  api, html, useEffect, useState, useSession, useForm, Field, FormError, SubmitButton, Dialog, Alert, ErrorAlert,
  Loading, SelectField, TextareaField, SecretOnce, RoleOptions, useRoles, useGroups, fullName, when, protection,
  splitList,
} from "./users-kit.js";

const SCOPE_KEYS = [["connections", "Connections"], ["nodes", "Nodes"], ["storages", "Storages"],
                    ["vms", "VMs and containers (VMID)"]];
const PROFILE = ["first_name", "last_name", "email", "username", "company"];
const LABELS = { first_name: "First name", last_name: "Last name", email: "Email", username: "Username",
                 company: "Company", role: "Role", status: "Status" };

function Buttons({ onClose, children }) {
  return html`<div class="dialog-footer">
    <button type="button" class="button" onClick=${onClose}>Cancel</button>${children}</div>`;
}

// --- edit -----------------------------------------------------------------------------------

function profileOf(user) {
  return { ...Object.fromEntries(PROFILE.map((key) => [key, user[key] || ""])), role: user.role || "" };
}

export function EditDialog({ user, onDone, onClose }) {
  const session = useSession();
  const roles = useRoles();
  const [base, setBase] = useState(null);    // {data, etag}: what the edit is based on
  const [scopeBase, setScopeBase] = useState(undefined);  // null: scopes not readable (needs admin.rbac)
  const [conflict, setConflict] = useState(null);  // the record as it is now, after a 412
  const [loadError, setLoadError] = useState(null);
  const form = useForm(null);
  const path = `/users/${encodeURIComponent(user.id)}`;
  const tenantId = (session.access && session.access.tenant_id) || (session.user && session.user.tenant_id);

  useEffect(() => {
    Promise.all([
      api.get(path),
      api.get(`${path}/roles`).then((answer) => answer.data.items.find((item) => item.tenant_id === tenantId) || null,
                                    () => undefined),
    ]).then(([answer, assignment]) => {
      const scope = assignment === undefined ? null
        : Object.fromEntries(SCOPE_KEYS.map(([key]) => [key, ((assignment && assignment.scope && assignment.scope[key]) || []).join(", ")]));
      setBase({ data: answer.data, etag: answer.etag });
      setScopeBase(scope);
      form.setValues({ ...profileOf(answer.data), ...(scope || {}) });
    }, setLoadError);
  }, []);

  const title = `Edit ${user.username || user.email}`;
  if (!base || !form.values) {
    return html`<${Dialog} open title=${title} onClose=${onClose}>
      ${loadError ? html`<${ErrorAlert} error=${loadError} />` : html`<${Loading} />`}
      <${Buttons} onClose=${onClose} />
    <//>`;
  }
  const roleLocked = protection(base.data, session.user, "role");

  const save = form.submit(async (values) => {
    const changes = {};
    for (const key of PROFILE) if (values[key] !== (base.data[key] || "")) changes[key] = values[key];
    const roleChanged = values.role && values.role !== (base.data.role || "");
    const scopeChanged = scopeBase && SCOPE_KEYS.some(([key]) => values[key] !== scopeBase[key]);
    if (roleChanged && !scopeChanged) changes.role = values.role;
    try {
      if (Object.keys(changes).length > 0) {
        await api.patch(path, changes, { ifMatch: base.etag || "*" });
      }
      if (scopeChanged) {
        const scope = Object.fromEntries(SCOPE_KEYS.map(([key]) => [key, splitList(values[key])]));
        await api.put(`${path}/roles/${encodeURIComponent(tenantId)}`, { role: values.role, scope });
      }
    } catch (problem) {
      if (problem.status === 412) {
        // What the user typed stays; fields they left alone take the other person's values, so
        // saving again puts only their own changes over the current record.
        const fresh = await api.get(path);
        const before = profileOf(base.data);
        const now = profileOf(fresh.data);
        form.setValues((typed) => Object.fromEntries(Object.entries(typed).map(
          ([key, value]) => [key, key in now && value === before[key] ? now[key] : value])));
        setBase({ data: fresh.data, etag: fresh.etag });
        setConflict(fresh.data);  // the conflict box says it all
        return;
      }
      throw problem;
    }
    setConflict(null);
    onDone(`${values.username || user.email} is saved.`);
  });

  return html`<${Dialog} open title=${title} onClose=${onClose}>
    <form onSubmit=${save} novalidate class="edit-user">
      ${conflict ? html`<div class="alert alert-warning conflict" role="alert">
        <p><b>Someone else changed this user while you were editing.</b> The current values are below. What you
          typed is kept, the fields you left alone now show their values: save again to apply your changes on top,
          or cancel to keep theirs.</p>
        <dl class="current-values">${[...PROFILE, "role", "status"].map((key) => html`<div key=${key}>
          <dt>${LABELS[key]}</dt><dd data-current=${key}>${conflict[key] || "—"}</dd></div>`)}</dl>
      </div>` : null}
      <${FormError} form=${form} />
      <div class="grid two">
        <${Field} form=${form} name="first_name" label="First name" autofocus />
        <${Field} form=${form} name="last_name" label="Last name" />
        <${Field} form=${form} name="email" label="Email" type="email" />
        <${Field} form=${form} name="username" label="Username" autocomplete="off" />
        <${Field} form=${form} name="company" label="Company" />
        <${SelectField} form=${form} name="role" label="Role" disabled=${Boolean(roleLocked)} hint=${roleLocked}>
          ${!form.values.role ? html`<option value="">(no role)</option>` : null}
          <${RoleOptions} roles=${roles} current=${form.values.role} />
        <//>
      </div>
      ${scopeBase ? html`<fieldset class="scope">
        <legend>Scope of the role in this tenant</legend>
        <p class="hint">Ids separated by commas; an empty list means all of them.</p>
        <div class="grid two">
          ${SCOPE_KEYS.map(([key, label]) => html`<${Field} key=${key} form=${form} name=${key} label=${label} />`)}
        </div>
      </fieldset>` : null}
      <p class="hint">Status: ${base.data.status}. Created ${when(base.data.created_at)}, last sign-in ${when(base.data.last_login_at)}.</p>
      <${Buttons} onClose=${onClose}><${SubmitButton} form=${form} busyLabel="Saving…">Save changes<//><//>
    </form>
  <//>`;
}

// --- approve --------------------------------------------------------------------------------

export function ApproveDialog({ user, onDone, onClose }) {
  const roles = useRoles();
  const groups = useGroups();
  const form = useForm({ role: "viewer", groups: [], typed_groups: "" });
  const extra = (groups || []).filter((group) => group.cn !== "ldapusers");
  const chosen = form.values.groups;
  const toggle = (cn) => form.set("groups", chosen.includes(cn) ? chosen.filter((c) => c !== cn) : [...chosen, cn]);
  form.fields.add("groups");
  const approve = form.submit(async (values) => {
    const picked = groups ? values.groups : splitList(values.typed_groups);
    const body = { status: "active", role: values.role, ...(picked.length ? { groups: picked } : {}) };
    await api.patch(`/users/${encodeURIComponent(user.id)}`, body, { ifMatch: user.version ? `"${user.version}"` : undefined });
    onDone(`${user.username} is approved${picked.length ? ` and in ${picked.join(", ")}` : ""}.`);
  });
  return html`<${Dialog} open title=${`Approve ${user.username}`} onClose=${onClose}>
    <form onSubmit=${approve} novalidate>
      <p>${fullName(user)} (${user.email}) registered ${when(user.created_at)} and is waiting for approval. Once approved
        they sign in here and bind to the LDAP directory as a member of <b>ldapusers</b>.</p>
      <${FormError} form=${form} />
      <${SelectField} form=${form} name="role" label="Role"><${RoleOptions} roles=${roles} current=${form.values.role} /><//>
      ${groups === undefined ? html`<${Loading} label="Loading groups…" />`
        : groups ? html`<fieldset class=${`groups${form.errors.groups ? " has-error" : ""}`}>
            <legend>Groups beyond ldapusers</legend>
            ${extra.length === 0 ? html`<p class="hint">No other group exists yet; the Groups area creates them.</p>` : null}
            ${extra.map((group) => html`<label class="check" key=${group.cn}>
                <input type="checkbox" name="group" value=${group.cn} checked=${chosen.includes(group.cn)}
                       onChange=${() => toggle(group.cn)} />
                ${" "}${group.cn}${group.is_admin ? " (administrators)" : ""}${group.description ? ` — ${group.description}` : ""}</label>`)}
            ${form.errors.groups ? html`<div class="field-error">${form.errors.groups}</div>` : null}
          </fieldset>`
        : html`<${Field} form=${form} name="typed_groups" label="Groups beyond ldapusers"
                         hint="Group names (cn), separated by commas." />`}
      <${Buttons} onClose=${onClose}><${SubmitButton} form=${form} busyLabel="Approving…">Approve<//><//>
    </form>
  <//>`;
}

// --- reset password ------------------------------------------------------------------------

export function ResetDialog({ user, onDone, onClose }) {
  const form = useForm({ method: "email" });
  const [password, setPassword] = useState(null);
  const [smtpMissing, setSmtpMissing] = useState(false);
  const reset = form.submit(async (values) => {
    try {
      const answer = await api.post(`/users/${encodeURIComponent(user.id)}/password-reset`, { method: values.method });
      if (values.method === "random") setPassword(answer.data.password);
      else onDone(`A reset link is on its way to ${user.email}.`);
    } catch (problem) {
      setSmtpMissing(problem.code === "smtp_not_configured");
      throw problem;
    }
  });
  const name = user.username || user.email;
  if (password) {
    return html`<${Dialog} open title=${`New password of ${name}`} onClose=${() => onDone("")}>
      <${SecretOnce} label="Generated password" value=${password} />
      <p>Their sessions have ended.</p>
      <div class="dialog-footer"><button type="button" class="button primary" onClick=${() => onDone("")}>Done</button></div>
    <//>`;
  }
  const method = form.values.method;
  return html`<${Dialog} open title=${`Reset the password of ${name}`} onClose=${onClose}>
    <form onSubmit=${reset}>
      <${FormError} form=${form} />
      ${smtpMissing ? html`<${SmtpHelp} />` : null}
      <fieldset><legend>How</legend>
        <label class="check"><input type="radio" name="method" value="email" checked=${method === "email"}
          onChange=${() => form.set("method", "email")} /> Mail a reset link to ${user.email} (it works once, for an hour)</label>
        <label class="check"><input type="radio" name="method" value="random" checked=${method === "random"}
          onChange=${() => form.set("method", "random")} /> Set a random password now and show it here once (their
          sessions end; they must change it at their next sign-in)</label>
      </fieldset>
      <${Buttons} onClose=${onClose}><${SubmitButton} form=${form}>${method === "email" ? "Send link" : "Set password"}<//><//>
    </form>
  <//>`;
}

// --- remove ---------------------------------------------------------------------------------

export function RemoveDialog({ user, onDone, onClose }) {
  const form = useForm({});
  const name = user.username || user.email;
  const remove = form.submit(async () => {
    await api.del(`/users/${encodeURIComponent(user.id)}`);
    onDone(`${name} is removed.`);
  });
  return html`<${Dialog} open title=${`Remove ${name}?`} onClose=${onClose}>
    <form onSubmit=${remove}>
      <${FormError} form=${form} />
      <p>This deletes the account of ${fullName(user)} (${user.email}), ends their sessions and takes away their roles
        and groups, here and in the LDAP directory. It cannot be undone.</p>
      <p><b>The audit trail keeps their past actions</b>, under their name. To stop their access but keep the account,
        suspend them instead.</p>
      <${Buttons} onClose=${onClose}><${SubmitButton} form=${form} kind="danger" busyLabel="Removing…">Remove ${name}<//><//>
    </form>
  <//>`;
}

// --- create ---------------------------------------------------------------------------------

export function CreateDialog({ onDone, onClose }) {
  const roles = useRoles();
  const form = useForm({ username: "", email: "", first_name: "", last_name: "", company: "", role: "viewer" });
  const [created, setCreated] = useState(null);
  const create = form.submit(async (values) => {
    const body = { ...values };
    if (!body.company) delete body.company;
    setCreated((await api.post("/users", body)).data);
  });
  if (created) {
    const done = () => onDone(`${created.user.username} is created.`);
    return html`<${Dialog} open title=${`${created.user.username} is created`} onClose=${done}>
      <p>${fullName(created.user)} is active${created.user.role ? ` with the role ${created.user.role}` : ""}.</p>
      <${SecretOnce} label="Their password" value=${created.password} />
      <div class="dialog-footer"><button type="button" class="button primary" onClick=${done}>Done</button></div>
    <//>`;
  }
  return html`<${Dialog} open title="Create user" onClose=${onClose}>
    <form onSubmit=${create} novalidate>
      <p class="hint">The user is active at once. Gatehouse generates their password and shows it once.</p>
      <${FormError} form=${form} />
      <div class="grid two">
        <${Field} form=${form} name="username" label="Username" required autocomplete="off" />
        <${Field} form=${form} name="email" label="Email" type="email" required autocomplete="off" />
        <${Field} form=${form} name="first_name" label="First name" required />
        <${Field} form=${form} name="last_name" label="Last name" required />
        <${Field} form=${form} name="company" label="Company" />
        <${SelectField} form=${form} name="role" label="Role"><${RoleOptions} roles=${roles} current=${form.values.role} /><//>
      </div>
      <${Buttons} onClose=${onClose}><${SubmitButton} form=${form} busyLabel="Creating…">Create user<//><//>
    </form>
  <//>`;
}

// --- invite ---------------------------------------------------------------------------------

export function SmtpHelp() {
  return html`<div class="alert alert-warning smtp-help" role="alert">
    <p><b>Mail is not set up yet.</b> Invitations and reset links go out by mail, so Gatehouse needs an SMTP server
      first. Someone with the <code>admin.settings</code> permission sets it in Settings (host, port, TLS, sender
      address), or with the API:</p>
    <pre>PUT /api/v1/settings/smtp
{"host": "smtp.example.com", "port": 587, "tls_mode": "starttls",
 "username": "gatehouse", "password": "…", "from_address": "gatehouse@example.com"}</pre>
    <p>Until then, <b>Create user</b> makes an account with a password shown once.</p>
  </div>`;
}

/** `invalid_emails` and `email_taken` name each refused address in `details` (address -> problem):
 *  they belong next to the addresses field. */
function perAddress(problem) {
  if (!["invalid_emails", "email_taken"].includes(problem.code)) return problem;
  const addresses = Object.entries(problem.fields || {});
  if (addresses.length === 0) return problem;
  const fields = { emails: addresses.map(([address, why]) => `${address}: ${why}`).join("; ") };
  return Object.assign(Object.create(Object.getPrototypeOf(problem)), problem, { fields, message: problem.message });
}

export function InviteDialog({ onDone, onClose }) {
  const roles = useRoles();
  const form = useForm({ emails: "", role: "viewer" });
  const [smtpMissing, setSmtpMissing] = useState(false);
  const invite = form.submit(async (values) => {
    try {
      const answer = await api.post("/invitations", { emails: splitList(values.emails), role: values.role });
      onDone(`Invited ${answer.data.items.map((item) => item.email).join(", ")} as ${values.role}; the mails are on their way.`);
    } catch (problem) {
      setSmtpMissing(problem.code === "smtp_not_configured");
      throw perAddress(problem);
    }
  });
  return html`<${Dialog} open title="Invite users" onClose=${onClose}>
    <form onSubmit=${invite} novalidate>
      ${smtpMissing ? html`<${SmtpHelp} />` : html`<${FormError} form=${form} />`}
      <${TextareaField} form=${form} name="emails" label="Email addresses" placeholder="ada@example.com, grace@example.com"
        hint="Several at once: separate them by commas, spaces or new lines. Each gets a link that works once, for 24 hours; they are active with the role below as soon as they register." />
      <${SelectField} form=${form} name="role" label="Role"><${RoleOptions} roles=${roles} current=${form.values.role} /><//>
      <${Buttons} onClose=${onClose}><${SubmitButton} form=${form} busyLabel="Sending…">Send invitations<//><//>
    </form>
  <//>`;
}
