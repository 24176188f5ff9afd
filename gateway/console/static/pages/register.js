// Self-registration: the account waits for an administrator's approval. When the super admins
// closed it (Settings > Registration) the page says so instead of showing the form.
import { html, useEffect, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { Link } from "../router.js";
import { Field, FormError, SubmitButton, useForm } from "../components/form.js";
import { Alert } from "../components/feedback.js";
import { NewPassword, confirmed } from "../components/password.js";

/** The registration fields; `email` locked (an invitation's) when `lockedEmail` is given. */
export function RegistrationFields({ form, lockedEmail }) {
  return html`
    <${Field} form=${form} name="username" label="Username" autocomplete="username" required autofocus
      hint="Starts with a lower-case letter; then lower-case letters, digits, dots, dashes or underscores (at most 32). You sign in with it." />
    <div class="field-row">
      <${Field} form=${form} name="first_name" label="First name" autocomplete="given-name" required />
      <${Field} form=${form} name="last_name" label="Last name" autocomplete="family-name" required />
    </div>
    ${lockedEmail
      ? html`<${Field} form=${form} name="email" label="Email" type="email" readOnly aria-readonly="true"
          hint="The address this invitation was sent to; it cannot be changed here." />`
      : html`<${Field} form=${form} name="email" label="Email" type="email" autocomplete="email" required />`}
    <${NewPassword} form=${form} />`;
}

export function registrationBody(values) {
  return {
    username: values.username.trim(), first_name: values.first_name.trim(), last_name: values.last_name.trim(),
    email: values.email.trim(), password: values.password,
  };
}

/** Whether self-registration is open (GET /api/v1/auth/registration, anonymous): null while
 * unknown, else {open, domains}. If it cannot be read the page stays usable (the server decides). */
export function useRegistration() {
  const [registration, setRegistration] = useState(null);
  useEffect(() => {
    api.get("/auth/registration").then(
      (answer) => setRegistration({ open: answer.data.self_registration, domains: answer.data.allowed_email_domains || [] }),
      () => setRegistration({ open: true, domains: [] }),
    );
  }, []);
  return registration;
}

export function Register() {
  const registration = useRegistration();
  const [done, setDone] = useState(null);
  const form = useForm({ username: "", first_name: "", last_name: "", email: "", password: "", password_confirm: "" });
  const submit = form.submit(async (values) => {
    confirmed(form);
    const answer = await api.post("/auth/register", registrationBody(values));
    setDone(answer.data);
  });
  if (done) {
    return html`<section>
      <h1>Waiting for approval</h1>
      <${Alert}>Your account <strong>${done.username}</strong> was created. An administrator must approve it before you can sign in; you will be able to sign in once they have.<//>
      <p class="links"><${Link} href="/sign-in">Back to sign in<//></p>
    </section>`;
  }
  if (registration && !registration.open) {
    return html`<section>
      <h1>Registration is closed</h1>
      <${Alert}>New accounts are created by invitation only. Ask an administrator of your organisation to invite you.<//>
      <p class="links">Already have an account? <${Link} href="/sign-in">Sign in<//></p>
    </section>`;
  }
  return html`<section>
    <h1>Create an account</h1>
    ${registration && registration.domains.length
      ? html`<p class="hint">Registration is open to addresses of ${registration.domains.join(", ")}.</p>` : null}
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      <${RegistrationFields} form=${form} />
      <${SubmitButton} form=${form} busyLabel="Creating the account…">Register<//>
    </form>
    <p class="links">Already have an account? <${Link} href="/sign-in">Sign in<//></p>
  </section>`;
}
