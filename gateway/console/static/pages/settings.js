// Settings (super admins: admin.settings): the platform's settings, one section each, each with
// its own form: SMTP (and "send a test mail"), the LDAP directory (pages/settings-directory.js),
// the password policy, the 2FA policy for super admins, self-registration. Secrets (the SMTP
// password, the directory's bind passwords) are write-only: the page says whether one is
// stored, never what it is, and an empty field keeps it.
import { html, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { useSession } from "../session.js";
import { Field, FormError, SubmitButton, useForm } from "../components/form.js";
import { Alert } from "../components/feedback.js";
import { ConfirmDialog } from "../components/dialog.js";
import {
  areaStylesheet, CheckField, Saved, Section, SecretField, SelectField, TextareaField, useSetting, wholeNumber,
} from "./settings-kit.js";
import { DirectorySection } from "./settings-directory.js";

areaStylesheet("settings");

const SECTIONS = [["smtp", "Mail (SMTP)"], ["directory", "LDAP directory"], ["password-policy", "Password policy"],
                  ["two-factor", "Two-factor policy"], ["registration", "Registration"]];

export function SettingsPage() {
  return html`<div class="settings">
    <header class="page-header"><h1>Settings</h1></header>
    <p class="hint">Platform-wide settings: they apply to every tenant. Only super admins see or change them.</p>
    <nav class="settings-toc" aria-label="Settings sections"><ul>
      ${SECTIONS.map(([id, label]) => html`<li key=${id}><a href=${`#${id}`}>${label}</a></li>`)}
    </ul></nav>
    <${SmtpSection} />
    <${DirectorySection} />
    <${PasswordPolicySection} />
    <${TwoFactorSection} />
    <${RegistrationSection} />
  </div>`;
}

// --- SMTP -------------------------------------------------------------------------------------

function SmtpSection() {
  const [smtp, error, setSmtp] = useSetting("/settings/smtp");
  return html`<${Section} id="smtp" title="Mail (SMTP)" loaded=${smtp} error=${error}
    intro="The one mail server of the platform: invitations and password reset links go through it.">
    ${smtp ? html`<${SmtpForm} smtp=${smtp} onSaved=${setSmtp} /><${TestMailForm} configured=${smtp.configured} />` : null}
  <//>`;
}

function SmtpForm({ smtp, onSaved }) {
  const [saved, setSaved] = useState("");
  const form = useForm({
    host: smtp.host || "", port: String(smtp.port || 587), tls_mode: smtp.tls_mode || "starttls",
    username: smtp.username || "", password: "", remove_password: false, from_address: smtp.from_address || "",
  });
  const submit = form.submit(async (values) => {
    setSaved("");
    const body = {
      host: values.host.trim(), port: wholeNumber(values, "port"), tls_mode: values.tls_mode,
      username: values.username.trim() || null, from_address: values.from_address.trim(),
    };
    if (values.remove_password) body.password = "";
    else if (values.password) body.password = values.password;
    const answer = await api.put("/settings/smtp", body);
    form.setValues((old) => ({ ...old, password: "", remove_password: false }));
    onSaved(answer.data);
    setSaved("The SMTP settings are saved. Mails waiting for a retry are tried again now.");
  });
  return html`<form onSubmit=${submit} novalidate class="settings-form" aria-label="SMTP settings">
    <${FormError} form=${form} />
    <div class="field-row">
      <${Field} form=${form} name="host" label="Host" required hint="Host name or IP address of the SMTP server." />
      <${Field} form=${form} name="port" label="Port" type="number" inputMode="numeric" required min="1" max="65535" />
      <${SelectField} form=${form} name="tls_mode" label="Encryption"
        options=${[["starttls", "STARTTLS"], ["tls", "TLS (SMTPS)"], ["none", "None"]]} />
    </div>
    <${Field} form=${form} name="from_address" label="Sender address" type="email" required
      hint="The From: of every mail Gatehouse sends." />
    <div class="field-row">
      <${Field} form=${form} name="username" label="Username" autocomplete="off" hint="Empty: the server needs no sign-in." />
      <${SecretField} form=${form} name="password" label="Password" isSet=${smtp.password_set}
        hint="Needed only when the server asks for a username and password." />
    </div>
    ${smtp.password_set ? html`<${CheckField} form=${form} name="remove_password" label="Remove the stored password" />` : null}
    <${Saved} text=${saved} />
    <${SubmitButton} form=${form} busyLabel="Saving…">Save SMTP settings<//>
  </form>`;
}

function TestMailForm({ configured }) {
  const session = useSession();
  const [result, setResult] = useState(null);
  const form = useForm({ to: (session.user && session.user.email) || "" });
  const submit = form.submit(async (values) => {
    setResult(null);
    const answer = await api.post("/settings/smtp/test", { to: values.to.trim() });
    setResult(answer.data);
  });
  return html`<form onSubmit=${submit} novalidate class="settings-form subform test-mail" aria-label="Send a test mail">
    <h3>Send a test mail</h3>
    ${configured ? null : html`<p class="hint">Save the SMTP settings first: the test uses what is stored.</p>`}
    <${FormError} form=${form} />
    <div class="field-row">
      <${Field} form=${form} name="to" label="Test mail to" type="email" autocomplete="email" required
        hint="Sent at once with the stored settings; the answer says whether the server took it." />
    </div>
    ${result && result.sent ? html`<${Alert} kind="info">The SMTP server took the test mail to ${result.to}. Check that inbox.<//>` : null}
    ${result && !result.sent ? html`<${Alert} kind="error">The test mail to ${result.to} was not sent: ${result.error}<//>` : null}
    <${SubmitButton} form=${form} kind="" busyLabel="Sending the test mail…">Send a test mail<//>
  </form>`;
}

// --- password policy ------------------------------------------------------------------------

function PasswordPolicySection() {
  const [policy, error] = useSetting("/settings/password-policy");
  return html`<${Section} id="password-policy" title="Password policy" loaded=${policy} error=${error}
    intro="Applies to every password set from now on (registration, invitations, resets, changes); existing passwords stay valid.">
    ${policy ? html`<${PasswordPolicyForm} policy=${policy} />` : null}
  <//>`;
}

function PasswordPolicyForm({ policy }) {
  const [saved, setSaved] = useState("");
  const form = useForm({ min_length: String(policy.min_length), max_length: String(policy.max_length),
                         refuse_common: policy.refuse_common });
  const submit = form.submit(async (values) => {
    setSaved("");
    const answer = await api.put("/settings/password-policy", {
      min_length: wholeNumber(values, "min_length"), max_length: wholeNumber(values, "max_length"),
      refuse_common: values.refuse_common,
    });
    form.setValues({ min_length: String(answer.data.min_length), max_length: String(answer.data.max_length),
                     refuse_common: answer.data.refuse_common });
    setSaved(`The password policy is saved: ${answer.data.min_length} to ${answer.data.max_length} characters` +
             `${answer.data.refuse_common ? ", common passwords refused" : ""}.`);
  });
  return html`<form onSubmit=${submit} novalidate class="settings-form" aria-label="Password policy">
    <${FormError} form=${form} />
    <div class="field-row">
      <${Field} form=${form} name="min_length" label="Minimum length" type="number" inputMode="numeric" min="8" max="128"
        hint="8 to 128 characters." />
      <${Field} form=${form} name="max_length" label="Maximum length" type="number" inputMode="numeric" min="8" max="1024"
        hint="At least the minimum; at most 1024." />
    </div>
    <${CheckField} form=${form} name="refuse_common" label="Refuse commonly used passwords" />
    <${Saved} text=${saved} />
    <${SubmitButton} form=${form} busyLabel="Saving…">Save password policy<//>
  </form>`;
}

// --- 2FA policy -------------------------------------------------------------------------------

function TwoFactorSection() {
  const [policy, error, setPolicy] = useSetting("/settings/2fa-policy");
  return html`<${Section} id="two-factor" title="Two-factor policy" loaded=${policy} error=${error}
    intro="Whether every super admin must use two-factor authentication (TOTP). Tenant users' 2FA is set per user in Users.">
    ${policy ? html`<${TwoFactorForm} policy=${policy} onSaved=${setPolicy} />` : null}
  <//>`;
}

function TwoFactorForm({ policy, onSaved }) {
  const session = useSession();
  const [saved, setSaved] = useState("");
  const [asking, setAsking] = useState(false);
  const form = useForm({ require_for_super_admin: policy.require_for_super_admin });
  const save = async (value) => {
    const answer = await api.put("/settings/2fa-policy", { require_for_super_admin: value });
    onSaved(answer.data);
    setSaved(answer.data.require_for_super_admin
      ? "Saved: super admins without two-factor authentication can only enroll, from their next request."
      : "Saved: super admins may sign in without two-factor authentication.");
  };
  const submit = form.submit(async (values) => {
    setSaved("");
    const ownMissing = session.user && !session.user.totp_enrolled;
    if (values.require_for_super_admin && !policy.require_for_super_admin && ownMissing) {
      setAsking(true);  // the dialog saves
      return;
    }
    await save(values.require_for_super_admin);
  });
  return html`<form onSubmit=${submit} novalidate class="settings-form" aria-label="Two-factor policy">
    <${FormError} form=${form} />
    <${CheckField} form=${form} name="require_for_super_admin" label="Require two-factor authentication for super admins" />
    <${Saved} text=${saved} />
    <${SubmitButton} form=${form} busyLabel="Saving…">Save two-factor policy<//>
    <${ConfirmDialog} open=${asking} title="Require 2FA while you have none?" confirmLabel="Require it"
      busyLabel="Saving…" danger onConfirm=${() => save(true)} onClose=${() => setAsking(false)}>
      <p>You have not set up two-factor authentication yourself. From your next request you could do nothing but
        set it up (Profile, two-factor authentication). Set it up first if you are unsure.</p>
    <//>
  </form>`;
}

// --- registration -------------------------------------------------------------------------------

function RegistrationSection() {
  const [settings, error] = useSetting("/settings/registration");
  return html`<${Section} id="registration" title="Registration" loaded=${settings} error=${error}
    intro="Whether people may create an account themselves (it then waits for an administrator's approval). Invitations work either way.">
    ${settings ? html`<${RegistrationForm} settings=${settings} />` : null}
  <//>`;
}

function domainsText(domains) {
  return (domains || []).join("\n");
}

function RegistrationForm({ settings }) {
  const [saved, setSaved] = useState("");
  const form = useForm({ self_registration: settings.self_registration,
                         allowed_email_domains: domainsText(settings.allowed_email_domains) });
  const submit = form.submit(async (values) => {
    setSaved("");
    const domains = values.allowed_email_domains.split(/[\n,;]+/).map((d) => d.trim()).filter(Boolean);
    const answer = await api.put("/settings/registration", { self_registration: values.self_registration,
                                                             allowed_email_domains: domains });
    form.setValues({ self_registration: answer.data.self_registration,
                     allowed_email_domains: domainsText(answer.data.allowed_email_domains) });
    const open = answer.data.self_registration;
    const where = answer.data.allowed_email_domains.length
      ? ` with an address of ${answer.data.allowed_email_domains.join(", ")}` : "";
    setSaved(open ? `Saved: anyone may register${where}.` : "Saved: self-registration is closed; only invitations create accounts.");
  });
  return html`<form onSubmit=${submit} novalidate class="settings-form" aria-label="Registration settings">
    <${FormError} form=${form} />
    <${CheckField} form=${form} name="self_registration" label="Allow self-registration"
      hint="Off: the Register page says registration is closed and the sign-in page hides its link." />
    <${TextareaField} form=${form} name="allowed_email_domains" label="Allowed email domains" rows=${3}
      placeholder="example.com"
      hint="One per line, or separated by commas or semicolons. Only addresses of exactly these domains may register; empty: any domain." />
    <${Saved} text=${saved} />
    <${SubmitButton} form=${form} busyLabel="Saving…">Save registration settings<//>
  </form>`;
}
