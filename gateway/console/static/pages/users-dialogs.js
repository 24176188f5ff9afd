// The dialogs of the Users page: edit (If-Match, 412), approve, reset password, remove,
// create and invite. Each keeps what was typed when the API refuses it, and shows every
// error next to the field its `details` names.
import {
  api, html, useEffect, useState, getWithEtag, fieldErrors, errorWords, Field, FormError, Dialog, SecretOnce,
  fullName, useRoles, useGroups,
} from "./users-kit.js";

const SCOPE_KEYS = [["connections", "Connections"], ["nodes", "Nodes"], ["storages", "Storages"], ["vms", "VMs and containers (VMID)"]];
const PROFILE = ["first_name", "last_name", "email", "username", "company"];

function RoleOptions({ roles, current }) {
  const names = current && !roles.includes(current) ? [current, ...roles] : roles;
  return names.map((name) => html`<option value=${name}>${name}</option>`);
}

function splitList(text) {
  return text.split(/[\s,;]+/).map((item) => item.trim()).filter(Boolean);
}

// --- edit -----------------------------------------------------------------------------------

export function EditDialog({ user, me, session, onDone, onClose }) {
  const roles = useRoles();
  const [loaded, setLoaded] = useState(null);  // {body, etag}: what the edit is based on
  const [form, setForm] = useState(null);
  const [scope, setScope] = useState(null);    // null: the caller cannot read scopes (admin.rbac)
  const [scopeLoaded, setScopeLoaded] = useState(null);
  const [error, setError] = useState(null);
  const [conflict, setConflict] = useState(null);  // the current record after a 412
  const [busy, setBusy] = useState(false);
  const path = `/api/v1/users/${encodeURIComponent(user.id)}`;
  const tenantId = (session && session.tenantId) || (me && me.tenant_id);

  useEffect(() => {
    getWithEtag(path).then((answer) => {
      setLoaded(answer);
      setForm({ ...Object.fromEntries(PROFILE.map((key) => [key, answer.body[key] || ""])), role: answer.body.role || "" });
    }, setError);
    api.get(`${path}/roles`).then((page) => {
      const mine = page.items.find((item) => item.tenant_id === tenantId) || page.items[0];
      const current = Object.fromEntries(SCOPE_KEYS.map(([key]) => [key, ((mine && mine.scope && mine.scope[key]) || []).join(", ")]));
      setScope(current);
      setScopeLoaded(current);
    }, () => setScope(null));
  }, []);

  if (!form) {
    return html`<${Dialog} title=${`Edit ${user.username || user.email}`} onClose=${onClose}>
      ${error ? html`<${FormError} error=${error} />` : html`<p aria-busy="true">Loading…</p>`}
    <//>`;
  }
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  const roleLocked = loaded.body.is_first_admin ? "The first administrator's role cannot change." : null;

  const save = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const changes = {};
    for (const key of PROFILE) if (form[key] !== (loaded.body[key] || "")) changes[key] = form[key];
    const roleChanged = form.role && form.role !== (loaded.body.role || "");
    const scopeChanged = scope && JSON.stringify(scope) !== JSON.stringify(scopeLoaded);
    if (roleChanged && !scopeChanged) changes.role = form.role;
    try {
      let current = loaded;
      if (Object.keys(changes).length > 0) {
        const answer = await api.raw("PATCH", path, changes, { "If-Match": loaded.etag || "*" });
        current = { body: answer.body, etag: answer.headers.get("ETag") };
      }
      if (scopeChanged) {
        const body = { role: form.role, scope: Object.fromEntries(SCOPE_KEYS.map(([key]) => [key, splitList(scope[key])])) };
        await api.put(`${path}/roles/${encodeURIComponent(tenantId)}`, body);
      }
      setLoaded(current);
      onDone(`${form.username || user.email} is saved.`);
    } catch (problem) {
      setBusy(false);
      if (problem.status === 412) {
        const fresh = await getWithEtag(path);  // the form keeps what was typed; saving again applies it
        setLoaded(fresh);
        setConflict(fresh.body);
      }
      setError(problem);
    }
  };

  return html`<${Dialog} title=${`Edit ${user.username || user.email}`} onClose=${onClose} wide>
    <form onSubmit=${save} novalidate>
      ${conflict && html`<div class="conflict" role="alert">
        <p><b>Someone else changed this user while you were editing.</b> Their values are below; your typing is
          kept. Save again to apply yours on top of theirs, or close to keep theirs.</p>
        <dl>${[...PROFILE, "role", "status"].map((key) => html`<dt>${key.replace("_", " ")}</dt><dd data-current=${key}>${conflict[key] || "—"}</dd>`)}</dl>
      </div>`}
      ${error && error.status !== 412 && html`<${FormError} error=${error} fields=${[...PROFILE, "role"]} />`}
      <div class="grid two">
        <${Field} label="First name" name="first_name" value=${form.first_name} onInput=${set("first_name")} error=${error} />
        <${Field} label="Last name" name="last_name" value=${form.last_name} onInput=${set("last_name")} error=${error} />
        <${Field} label="Email" name="email" type="email" value=${form.email} onInput=${set("email")} error=${error} />
        <${Field} label="Username" name="username" value=${form.username} onInput=${set("username")} error=${error} />
        <${Field} label="Company" name="company" value=${form.company} onInput=${set("company")} error=${error} />
        <${Field} label="Role" name="role" value=${form.role} onInput=${set("role")} error=${error}
                  disabled=${Boolean(roleLocked)} hint=${roleLocked}>
          ${!form.role && html`<option value="">(no role)</option>`}
          <${RoleOptions} roles=${roles} current=${form.role} />
        <//>
      </div>
      ${scope && html`<fieldset class="scope">
        <legend>Scope of the role</legend>
        <p class="hint">Ids separated by commas. Empty lists mean everything the role allows.</p>
        <div class="grid two">
          ${SCOPE_KEYS.map(([key, label]) => html`<${Field} label=${label} name=${key} value=${scope[key]}
              onInput=${(value) => setScope({ ...scope, [key]: value })} error=${error} />`)}
        </div>
      </fieldset>`}
      <footer>
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? "Saving…" : "Save changes"}</button>
      </footer>
    </form>
  <//>`;
}

// --- approve --------------------------------------------------------------------------------

export function ApproveDialog({ user, onDone, onClose }) {
  const roles = useRoles();
  const groups = useGroups();
  const [role, setRole] = useState("viewer");
  const [chosen, setChosen] = useState([]);
  const [typedGroups, setTypedGroups] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const extra = (groups || []).filter((group) => group.cn !== "ldapusers");
  const toggle = (cn) => setChosen(chosen.includes(cn) ? chosen.filter((c) => c !== cn) : [...chosen, cn]);

  const approve = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = { status: "active", role, groups: groups ? chosen : splitList(typedGroups) };
    if (body.groups.length === 0) delete body.groups;
    try {
      await api.patch(`/api/v1/users/${encodeURIComponent(user.id)}`, body);
      onDone(`${user.username} is approved${body.groups ? ` and in ${body.groups.join(", ")}` : ""}.`);
    } catch (problem) {
      setBusy(false);
      setError(problem);
    }
  };
  return html`<${Dialog} title=${`Approve ${user.username}`} onClose=${onClose}>
    <form onSubmit=${approve} novalidate>
      <p>${fullName(user)} (${user.email}) registered on ${new Date(user.created_at).toLocaleString()} and waits
        for approval. Approved, they can sign in and bind to the LDAP directory as members of <b>ldapusers</b>.</p>
      <${FormError} error=${error} fields=${["role", "groups"]} />
      <${Field} label="Role" name="role" value=${role} onInput=${setRole} error=${error}>
        <${RoleOptions} roles=${roles} current=${role} />
      <//>
      ${groups
        ? html`<fieldset class=${`groups${fieldErrors(error).groups ? " invalid" : ""}`}>
            <legend>Groups beyond ldapusers</legend>
            ${extra.length === 0 && html`<p class="hint">No other groups exist yet (Groups creates them).</p>`}
            ${extra.map((group) => html`<label class="check"><input type="checkbox" name="group" value=${group.cn}
                checked=${chosen.includes(group.cn)} onChange=${() => toggle(group.cn)} />
                ${group.cn}${group.is_admin ? " (administrators)" : ""}${group.description ? ` — ${group.description}` : ""}</label>`)}
            ${fieldErrors(error).groups && html`<small class="field-error">${fieldErrors(error).groups}</small>`}
          </fieldset>`
        : html`<${Field} label="Groups beyond ldapusers" name="groups" value=${typedGroups} onInput=${setTypedGroups}
            error=${error} hint="Group names (cn), separated by commas." />`}
      <footer>
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? "Approving…" : "Approve"}</button>
      </footer>
    </form>
  <//>`;
}

// --- reset password ------------------------------------------------------------------------

export function ResetDialog({ user, onDone, onClose }) {
  const [method, setMethod] = useState("email");
  const [password, setPassword] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const reset = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await api.post(`/api/v1/users/${encodeURIComponent(user.id)}/password-reset`, { method });
      if (method === "random") { setPassword(answer.password); setBusy(false); }
      else onDone(`A reset link is on its way to ${user.email}.`);
    } catch (problem) {
      setBusy(false);
      setError(problem);
    }
  };
  if (password) {
    return html`<${Dialog} title=${`New password of ${user.username}`} onClose=${() => onDone("")}>
      <${SecretOnce} label="Generated password" value=${password} />
      <p>Their sessions have ended.</p>
      <footer><button type="button" class="primary" onClick=${() => onDone("")}>Done</button></footer>
    <//>`;
  }
  return html`<${Dialog} title=${`Reset the password of ${user.username}`} onClose=${onClose}>
    <form onSubmit=${reset}>
      <${FormError} error=${error} />
      ${error && error.code === "smtp_not_configured" && html`<${SmtpHelp} />`}
      <fieldset><legend>How</legend>
        <label class="check"><input type="radio" name="method" value="email" checked=${method === "email"}
          onChange=${() => setMethod("email")} /> Mail a reset link to ${user.email} (valid for an hour)</label>
        <label class="check"><input type="radio" name="method" value="random" checked=${method === "random"}
          onChange=${() => setMethod("random")} /> Set a random password now, shown once here (their sessions end;
          they must change it at their next sign-in)</label>
      </fieldset>
      <footer>
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${method === "email" ? "Send link" : "Set password"}</button>
      </footer>
    </form>
  <//>`;
}

// --- remove ---------------------------------------------------------------------------------

export function RemoveDialog({ user, onDone, onClose }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const name = user.username || user.email;
  const remove = async () => {
    setBusy(true);
    try {
      await api.del(`/api/v1/users/${encodeURIComponent(user.id)}`);
      onDone(`${name} is removed.`);
    } catch (problem) {
      setBusy(false);
      setError(problem);
    }
  };
  return html`<${Dialog} title=${`Remove ${name}?`} onClose=${onClose}>
    <${FormError} error=${error} />
    <p>This deletes the account of ${fullName(user)} (${user.email}), ends their sessions and takes away their roles
      and groups, here and in the LDAP directory. It cannot be undone.</p>
    <p><b>The audit trail keeps their past actions</b>, under their name. To stop access but keep the account,
      suspend them instead.</p>
    <footer>
      <button type="button" onClick=${onClose}>Cancel</button>
      <button type="button" class="danger" disabled=${busy} onClick=${remove}>Remove ${name}</button>
    </footer>
  <//>`;
}

// --- create ---------------------------------------------------------------------------------

export function CreateDialog({ onDone, onClose }) {
  const roles = useRoles();
  const [form, setForm] = useState({ username: "", email: "", first_name: "", last_name: "", company: "", role: "viewer" });
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  const create = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = { ...form };
    if (!body.company) delete body.company;
    try {
      setCreated(await api.post("/api/v1/users", body));
    } catch (problem) {
      setError(problem);
    }
    setBusy(false);
  };
  if (created) {
    return html`<${Dialog} title=${`${created.user.username} is created`} onClose=${() => onDone("")}>
      <p>${fullName(created.user)} is active${created.user.role ? ` with the role ${created.user.role}` : ""} and must
        change this password when they first sign in.</p>
      <${SecretOnce} label="Generated password" value=${created.password} />
      <footer><button type="button" class="primary" onClick=${() => onDone(`${created.user.username} is created.`)}>Done</button></footer>
    <//>`;
  }
  const fields = ["username", "email", "first_name", "last_name", "company", "role"];
  return html`<${Dialog} title="Create user" onClose=${onClose} wide>
    <form onSubmit=${create} novalidate>
      <p class="hint">The user is active at once. Gatehouse generates their password and shows it once.</p>
      <${FormError} error=${error} fields=${fields} />
      <div class="grid two">
        <${Field} label="Username" name="username" value=${form.username} onInput=${set("username")} error=${error} required autocomplete="off" />
        <${Field} label="Email" name="email" type="email" value=${form.email} onInput=${set("email")} error=${error} required autocomplete="off" />
        <${Field} label="First name" name="first_name" value=${form.first_name} onInput=${set("first_name")} error=${error} required />
        <${Field} label="Last name" name="last_name" value=${form.last_name} onInput=${set("last_name")} error=${error} required />
        <${Field} label="Company" name="company" value=${form.company} onInput=${set("company")} error=${error} />
        <${Field} label="Role" name="role" value=${form.role} onInput=${set("role")} error=${error}>
          <${RoleOptions} roles=${roles} current=${form.role} />
        <//>
      </div>
      <footer>
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? "Creating…" : "Create user"}</button>
      </footer>
    </form>
  <//>`;
}

// --- invite ---------------------------------------------------------------------------------

export function SmtpHelp() {
  return html`<div class="help smtp-help">
    <p><b>Mail is not set up yet.</b> Invitations and reset links go out by mail, so Gatehouse needs an SMTP server
      first. Someone with the <code>admin.settings</code> permission sets it under <a href="/settings">Settings</a>
      (host, port, TLS, sender address), or with the API:</p>
    <pre>PUT /api/v1/settings/smtp
{"host": "smtp.example.com", "port": 587, "tls_mode": "starttls",
 "username": "gatehouse", "password": "…", "from_address": "gatehouse@example.com"}</pre>
    <p>Until then, <b>Create user</b> makes an account with a password shown once.</p>
  </div>`;
}

export function InviteDialog({ onDone, onClose }) {
  const roles = useRoles();
  const [emails, setEmails] = useState("");
  const [role, setRole] = useState("viewer");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const invite = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await api.post("/api/v1/invitations", { emails: splitList(emails), role });
      onDone(`Invited ${answer.items.map((item) => item.email).join(", ")} as ${role}; the mails are on their way.`);
    } catch (problem) {
      setBusy(false);
      setError(problem);
    }
  };
  const details = fieldErrors(error);
  const perAddress = Object.entries(details).filter(([key]) => key.includes("@"));
  const emailsProblem = details.emails;
  return html`<${Dialog} title="Invite users" onClose=${onClose}>
    <form onSubmit=${invite} novalidate>
      ${error && error.code === "smtp_not_configured"
        ? html`<${SmtpHelp} />`
        : error && html`<div class="form-error" role="alert"><p>${errorWords(error)}</p></div>`}
      <div class=${`field${perAddress.length || emailsProblem ? " invalid" : ""}`}>
        <label for="invite-emails">Email addresses</label>
        <textarea id="invite-emails" name="emails" rows="4" value=${emails} onInput=${(e) => setEmails(e.target.value)}
          aria-describedby="invite-emails-hint invite-emails-error" aria-invalid=${perAddress.length || emailsProblem ? "true" : undefined}
          placeholder="ada@example.com, grace@example.com"></textarea>
        <small id="invite-emails-hint" class="hint">Several at once: separate them by commas, spaces or lines. Each gets a
          link valid for 24 hours that works once; their account is active with the role below as soon as they register.</small>
        <div id="invite-emails-error">
          ${emailsProblem && html`<small class="field-error">${emailsProblem}</small>`}
          ${perAddress.length > 0 && html`<ul class="field-error">${perAddress.map(([address, problem]) =>
              html`<li><b>${address}</b>: ${problem}</li>`)}</ul>`}
        </div>
      </div>
      <${Field} label="Role" name="role" value=${role} onInput=${setRole} error=${error}>
        <${RoleOptions} roles=${roles} current=${role} />
      <//>
      <footer>
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? "Sending…" : "Send invitations"}</button>
      </footer>
    </form>
  <//>`;
}
