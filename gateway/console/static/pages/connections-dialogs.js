// The dialogs of the Connections page: add and edit a connection (URL, API token or user and
// password, TLS: system CAs, a CA, or a pinned fingerprint fetched from the server for the admin
// to confirm, or none for labs), and set up the connection's LDAP realm. Each keeps what was
// typed when the API refuses it and shows every error next to the field it names.
import {
  api, html, useState, useForm, Field, FormError, SubmitButton, Dialog, Alert, SelectField,
  TextareaField, when,
} from "./connections-kit.js";

const TLS_MODES = [
  ["fingerprint", "Pin the certificate's fingerprint", "For a node's own self-signed certificate (what Proxmox VE ships)."],
  ["system", "Verify with the system's CAs", "The node has a certificate from a public CA (e.g. Let's Encrypt)."],
  ["ca", "Verify with a CA I give", "Paste the PEM certificate of the CA that signed the node's certificate."],
  ["none", "Do not verify", "Only for a lab: anyone on the way could read the secret."],
];

function tlsModeOf(connection) {
  if (!connection.verify_tls) return "none";
  if (connection.fingerprint) return "fingerprint";
  if (connection.ca_pem) return "ca";
  return "system";
}

function initialOf(connection) {
  if (!connection) {
    return { name: "", url: "https://", realm: "gatehouse", method: "token", token_id: "", token_secret: "",
             username: "", password: "", tls: "fingerprint", ca_pem: "", fingerprint: "" };
  }
  const auth = connection.auth || {};
  return { name: connection.name, url: connection.url, realm: connection.realm, method: auth.method || "token",
           token_id: auth.token_id || "", token_secret: "", username: auth.username || "", password: "",
           tls: tlsModeOf(connection), ca_pem: connection.ca_pem || "", fingerprint: connection.fingerprint || "" };
}

/** The TLS fields of a body: each of verify_tls, ca_pem and fingerprint (null removes one). */
function tlsOf(values) {
  const tls = values.tls;
  if (tls === "fingerprint" && !values.fingerprint.trim()) {
    throw Object.assign(new Error("Check the highlighted fields."),
                        { fields: { fingerprint: "Fetch the server's fingerprint and confirm it, or paste it (AB:CD:…)." } });
  }
  if (tls === "ca" && !values.ca_pem.trim()) {
    throw Object.assign(new Error("Check the highlighted fields."), { fields: { ca_pem: "Paste the CA's PEM certificate." } });
  }
  return { verify_tls: tls !== "none", ca_pem: tls === "ca" ? values.ca_pem : null,
           fingerprint: tls === "fingerprint" ? values.fingerprint.trim() : null };
}

/** The auth of a body: the whole of it with a secret; on an edit without one, only a changed login. */
function authOf(values, connection) {
  const token = values.method === "token";
  const login = token ? { token_id: values.token_id.trim() } : { username: values.username.trim() };
  const secret = token ? values.token_secret : values.password;
  if (secret) return { ...login, ...(token ? { token_secret: secret } : { password: secret }) };
  if (!connection) return login;  // the API names what is missing
  const before = connection.auth || {};
  if (before.method !== values.method) {
    throw Object.assign(new Error("Check the highlighted fields."),
                        { fields: { auth: "A new sign-in method needs its secret: type the token secret or password." } });
  }
  const changed = token ? login.token_id !== before.token_id : login.username !== before.username;
  return changed ? login : undefined;
}

export function ConnectionDialog({ connection, onDone, onClose }) {
  const editing = Boolean(connection);
  const form = useForm(initialOf(connection));
  const [certificate, setFetched] = useState(null);  // the certificate the server presented, to confirm
  const [fetching, setFetching] = useState(false);
  const values = form.values;
  // only the certificate of the address typed now: changing the address (even while fetching) drops it
  const fetched = certificate && certificate.asked === values.url ? certificate : null;
  form.fields.add("auth");
  form.fields.add("verify_tls");

  const fetchFingerprint = async () => {
    setFetched(null);
    setFetching(true);
    form.clear();
    try {
      const asked = values.url;
      setFetched({ ...(await api.post("/connections/tls/fingerprint", { url: asked })).data, asked });
    } catch (problem) {
      form.fail(problem);  // unreachable, timeout, not TLS: in words next to the address
    } finally {
      setFetching(false);
    }
  };
  const useFetched = () => {
    form.set("fingerprint", fetched.fingerprint);
    setFetched(null);
  };

  const save = form.submit(async (typed) => {
    const tls = tlsOf(typed);
    const auth = authOf(typed, connection);
    if (!editing) {
      const body = { name: typed.name, url: typed.url.trim(), realm: typed.realm.trim() || "gatehouse", auth,
                     verify_tls: tls.verify_tls };
      if (tls.ca_pem) body.ca_pem = tls.ca_pem;
      if (tls.fingerprint) body.fingerprint = tls.fingerprint;
      const answer = await api.post("/connections", body);
      onDone(`${answer.data.name} is added. Test it from its Actions menu.`);
      return;
    }
    const body = { ...tls };
    if (typed.name !== connection.name) body.name = typed.name;
    if (typed.url.trim() !== connection.url) body.url = typed.url.trim();
    if (typed.realm.trim() !== connection.realm) body.realm = typed.realm.trim();
    if (auth) body.auth = auth;
    const answer = await api.patch(`/connections/${encodeURIComponent(connection.id)}`, body,
                                   { ifMatch: connection.version ? `"${connection.version}"` : undefined });
    onDone(`${answer.data.name} is saved.`);
  });

  const token = values.method === "token";
  const title = editing ? `Edit ${connection.name}` : "Add connection";
  return html`<${Dialog} open title=${title} onClose=${onClose}>
    <form onSubmit=${save} novalidate class="connection-form">
      <${FormError} form=${form} />
      <div class="grid two">
        <${Field} form=${form} name="name" label="Name" required autofocus hint="Unique across every tenant." />
        <${Field} form=${form} name="realm" label="Realm" hint="The LDAP realm Proxmox VE uses for Gatehouse users." />
      </div>
      <${Field} form=${form} name="url" label="Address" type="url" required autocomplete="off"
                hint="https://host or https://host:port (port 8006 if left out)." />

      <fieldset class=${form.errors.auth ? "has-error" : ""}>
        <legend>Sign in to Proxmox VE with</legend>
        <label class="check"><input type="radio" name="method" value="token" checked=${token}
          onChange=${() => form.set("method", "token")} /> An API token (recommended)</label>
        <label class="check"><input type="radio" name="method" value="password" checked=${!token}
          onChange=${() => form.set("method", "password")} /> A user and password</label>
        ${token ? html`<div class="grid two">
            <${Field} form=${form} name="token_id" label="Token ID" autocomplete="off" hint="user@realm!tokenname" />
            <${Field} form=${form} name="token_secret" label="Token secret" type="password" autocomplete="new-password"
                      hint=${editing && connection.auth && connection.auth.secret_set ? "Leave empty to keep the stored secret." : ""} />
          </div>`
          : html`<div class="grid two">
            <${Field} form=${form} name="username" label="User" autocomplete="off" hint="user@realm" />
            <${Field} form=${form} name="password" label="Password" type="password" autocomplete="new-password"
                      hint=${editing && connection.auth && connection.auth.secret_set ? "Leave empty to keep the stored password." : ""} />
          </div>`}
        ${form.errors.auth ? html`<div class="field-error">${form.errors.auth}</div>` : null}
      </fieldset>

      <fieldset class=${form.errors.verify_tls ? "has-error" : ""}>
        <legend>TLS: how Gatehouse checks the node is the right one</legend>
        ${TLS_MODES.map(([mode, label, hint]) => html`<label class="check" key=${mode}>
          <input type="radio" name="tls" value=${mode} checked=${values.tls === mode}
                 onChange=${() => form.set("tls", mode)} /> ${label}<small class="hint">${hint}</small></label>`)}
        ${form.errors.verify_tls ? html`<div class="field-error">${form.errors.verify_tls}</div>` : null}
        ${values.tls === "ca" ? html`<${TextareaField} form=${form} name="ca_pem" label="CA certificate (PEM)" rows=${6}
            placeholder="-----BEGIN CERTIFICATE-----" />` : null}
        ${values.tls === "fingerprint" ? html`<div class="fingerprint-row">
            <${Field} form=${form} name="fingerprint" label="SHA-256 fingerprint" autocomplete="off"
                      hint="AB:CD:… as the node shows it under System > Certificates." />
            <button type="button" class="button" onClick=${fetchFingerprint} disabled=${fetching}
                    aria-busy=${fetching ? "true" : undefined}>
              ${fetching ? html`<span class="spinner" aria-hidden="true"></span> Fetching…` : "Fetch from server"}</button>
          </div>` : null}
        ${fetched ? html`<div class="alert alert-warning fetched" role="status">
            <p><b>${fetched.url} presents this certificate.</b> Compare the fingerprint with the one the node shows
              (System > Certificates, or <code>pvenode cert info</code> on the node) before you use it: anyone on
              the way could present their own.</p>
            <dl class="certificate">
              <div><dt>Fingerprint</dt><dd><code data-fingerprint>${fetched.fingerprint}</code></dd></div>
              <div><dt>Subject</dt><dd>${fetched.subject}</dd></div>
              <div><dt>Issuer</dt><dd>${fetched.issuer}</dd></div>
              <div><dt>Valid until</dt><dd>${when(fetched.not_after)}</dd></div>
            </dl>
            <div class="fetched-actions">
              <button type="button" class="button" onClick=${() => setFetched(null)}>Discard</button>
              <button type="button" class="button primary" onClick=${useFetched}>Use this fingerprint</button>
            </div>
          </div>` : null}
      </fieldset>
      <div class="dialog-footer">
        <button type="button" class="button" onClick=${onClose}>Cancel</button>
        <${SubmitButton} form=${form} busyLabel=${editing ? "Saving…" : "Adding…"}>${editing ? "Save changes" : "Add connection"}<//>
      </div>
    </form>
  <//>`;
}

// --- the LDAP realm ---------------------------------------------------------------------------------

export function RealmDialog({ connection, onDone, onClose }) {
  const form = useForm({ server: "", port: "", mode: "" });
  const [answer, setAnswer] = useState(null);
  const configure = form.submit(async (typed) => {
    const body = {};
    if (typed.server.trim()) body.server = typed.server.trim();
    if (typed.port.trim()) body.port = Number(typed.port.trim());
    if (typed.mode) body.mode = typed.mode;
    setAnswer((await api.post(`/connections/${encodeURIComponent(connection.id)}/realm`, body)).data);
  });
  const RESULT = { created: "is created", updated: "is updated", unchanged: "was already right (nothing changed)" };
  return html`<${Dialog} open title=${`Set up the realm of ${connection.name}`} onClose=${onClose}>
    <form onSubmit=${configure} novalidate>
      <p>Makes the LDAP realm <b>${connection.realm}</b> on ${connection.url} point at Gatehouse's directory, so
        Proxmox VE checks Gatehouse users' passwords there. No password of a user is sent to Proxmox VE.</p>
      <${FormError} form=${form} />
      ${answer && answer.ok ? html`<${Alert} kind="success">The realm ${answer.realm} ${RESULT[answer.result] || answer.result}:
          ${answer.mode}://${answer.server}:${answer.port}, users under ${answer.base_dn}.<//>` : null}
      ${answer && !answer.ok ? html`<${Alert} kind="error">The realm could not be set up: ${answer.error && answer.error.message}<//>` : null}
      <p class="hint">Leave these empty to use the directory settings.</p>
      <div class="grid two">
        <${Field} form=${form} name="server" label="Directory server (as Proxmox VE reaches it)" autocomplete="off" />
        <${Field} form=${form} name="port" label="Port" inputMode="numeric" />
      </div>
      <${SelectField} form=${form} name="mode" label="Connection mode">
        <option value="">As the directory settings say</option>
        <option value="ldap">ldap</option><option value="ldaps">ldaps</option>
        <option value="ldap+starttls">ldap+starttls</option>
      <//>
      <div class="dialog-footer">
        <button type="button" class="button" onClick=${answer && answer.ok ? () => onDone("") : onClose}>${answer && answer.ok ? "Done" : "Cancel"}</button>
        <${SubmitButton} form=${form} busyLabel="Setting up…">Set up realm<//>
      </div>
    </form>
  <//>`;
}

