// Settings > LDAP directory (GET/PUT /api/v1/settings/ldap): the directory Gatehouse writes users
// and groups to, and the read-only account Proxmox VE realms search as. Both bind passwords are
// write-only. Saving asks the directory to accept the bind first (the API refuses otherwise,
// naming the problem), so it may take a moment.
import { html, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { Field, FormError, SubmitButton, useForm } from "../components/form.js";
import { CheckField, Saved, Section, SecretField, TextareaField, useSetting } from "./settings-kit.js";

export function DirectorySection() {
  const [directory, error, setDirectory] = useSetting("/settings/ldap");
  return html`<${Section} id="directory" title="LDAP directory" loaded=${directory} error=${error}
    intro="Gatehouse writes its users (ou=people) and groups (ou=groups) to this directory; Proxmox VE realms read it.">
    ${directory ? html`<${DirectoryForm} directory=${directory} onSaved=${setDirectory} />` : null}
  <//>`;
}

function initial(directory) {
  return {
    url: directory.url || "", bind_dn: directory.bind_dn || "", password: "", base_dn: directory.base_dn || "",
    start_tls: Boolean(directory.start_tls), verify_tls: directory.verify_tls !== false, ca_pem: directory.ca_pem || "",
    login_shell: directory.login_shell || "/bin/bash", realm_server: directory.realm_server || "",
    realm_bind_dn: directory.realm_bind_dn || "", realm_bind_password: "",
  };
}

function DirectoryForm({ directory, onSaved }) {
  const [saved, setSaved] = useState("");
  const form = useForm(initial(directory));
  const submit = form.submit(async (values) => {
    setSaved("");
    const body = {
      url: values.url.trim(), bind_dn: values.bind_dn.trim(), base_dn: values.base_dn.trim(),
      start_tls: values.start_tls, verify_tls: values.verify_tls, ca_pem: values.ca_pem.trim() || null,
      login_shell: values.login_shell.trim(), realm_server: values.realm_server.trim() || null,
      realm_bind_dn: values.realm_bind_dn.trim() || null,
    };
    if (values.password) body.password = values.password;
    if (values.realm_bind_password) body.realm_bind_password = values.realm_bind_password;
    const answer = await api.put("/settings/ldap", body);
    onSaved(answer.data);
    form.setValues(initial(answer.data));
    setSaved("The directory accepted the bind and the settings are saved. A full sync follows.");
  });
  return html`<form onSubmit=${submit} novalidate class="settings-form" aria-label="LDAP directory settings">
    <${FormError} form=${form} />
    <div class="field-row">
      <${Field} form=${form} name="url" label="Directory URL" required hint="ldap://host[:port] or ldaps://host[:port]" />
      <${Field} form=${form} name="base_dn" label="Base DN" required hint="Users go under ou=people, groups under ou=groups of it." />
    </div>
    <div class="field-row">
      <${Field} form=${form} name="bind_dn" label="Bind DN" required autocomplete="off" />
      <${SecretField} form=${form} name="password" label="Bind password" isSet=${directory.password_set}
        hint="Required the first time." />
    </div>
    <div class="field-row">
      <${CheckField} form=${form} name="start_tls" label="Use STARTTLS" />
      <${CheckField} form=${form} name="verify_tls" label="Verify the directory's certificate" />
    </div>
    <${TextareaField} form=${form} name="ca_pem" label="CA certificate (PEM)" rows=${3}
      hint="Only when the directory's certificate is signed by a private CA." />
    <div class="field-row">
      <${Field} form=${form} name="login_shell" label="Login shell" />
      <${Field} form=${form} name="realm_server" label="Realm server" hint="The host Proxmox nodes reach the directory at, when not the URL's." />
    </div>
    <div class="field-row">
      <${Field} form=${form} name="realm_bind_dn" label="Realm bind DN" autocomplete="off"
        hint="The read-only account Proxmox VE realms search as; empty: they search anonymously." />
      <${SecretField} form=${form} name="realm_bind_password" label="Realm bind password"
        isSet=${directory.realm_bind_password_set} hint="Required with a first realm bind DN." />
    </div>
    <${Saved} text=${saved} />
    <${SubmitButton} form=${form} busyLabel="Checking the bind and saving…">Save directory settings<//>
  </form>`;
}
