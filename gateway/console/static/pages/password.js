// Forgot password, the reset link's page, and the forced password change.
import { html, useState } from "../lib/preact.js";
import { api, signOut } from "../api.js";
import { Link, hashParams, navigate } from "../router.js";
import { clear, load } from "../session.js";
import { Field, FormError, SubmitButton, useForm } from "../components/form.js";
import { Alert } from "../components/feedback.js";
import { NewPassword, confirmed } from "../components/password.js";

export function ForgotPassword() {
  const [sent, setSent] = useState(null);
  const form = useForm({ email: "" });
  const submit = form.submit(async ({ email }) => {
    await api.post("/auth/password-reset", { email: email.trim() });
    setSent(email.trim());
  });
  if (sent) {
    return html`<section>
      <h1>Check your mail</h1>
      <${Alert}>If an account uses <strong>${sent}</strong>, a link to choose a new password is on its way. It works once, for one hour.<//>
      <p class="links"><${Link} href="/sign-in">Back to sign in<//></p>
    </section>`;
  }
  return html`<section>
    <h1>Forgot your password?</h1>
    <p>Enter the email address of your account. We will mail you a link to choose a new password.</p>
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      <${Field} form=${form} name="email" label="Email" type="email" autocomplete="email" required autofocus />
      <${SubmitButton} form=${form} busyLabel="Sending…">Send the link<//>
    </form>
    <p class="links"><${Link} href="/sign-in">Back to sign in<//></p>
  </section>`;
}

const LINK_PROBLEMS = {
  reset_not_found: "This password reset link is not valid. Check that you opened the whole link from the mail, or ask for a new one.",
  reset_expired: "This password reset link has expired. Ask for a new one.",
  reset_used: "This password reset link was already used. Ask for a new one if you still need it.",
};

export function ResetPassword() {
  const [token] = useState(() => hashParams().get("token"));
  const [problem, setProblem] = useState(token ? null : "reset_not_found");
  const form = useForm({ password: "", password_confirm: "" });
  const submit = form.submit(async ({ password }) => {
    confirmed(form);
    try {
      await api.post("/auth/password-reset/confirm", { token, password });
    } catch (error) {
      if (LINK_PROBLEMS[error.code]) {
        setProblem(error.code);
        return;
      }
      throw error;
    }
    await signOut(); // every session ended with the reset, this browser's too
    clear();
    window.history.replaceState(null, "", "/reset-password"); // the spent token leaves the address bar
    navigate("/sign-in?done=reset", { replace: true });
  });
  if (problem) {
    return html`<section>
      <h1>This link does not work</h1>
      <${Alert} kind="error">${LINK_PROBLEMS[problem]}<//>
      <p class="links"><${Link} href="/forgot-password">Ask for a new link<//> · <${Link} href="/sign-in">Sign in<//></p>
    </section>`;
  }
  return html`<section>
    <h1>Choose a new password</h1>
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      <${NewPassword} form=${form} label="New password" />
      <${SubmitButton} form=${form} busyLabel="Saving…">Set the new password<//>
    </form>
  </section>`;
}

/** POST /me/password, its refusals named after this form's fields. */
async function changeOwnPassword(current, password) {
  try {
    await api.post("/me/password", { current_password: current, new_password: password });
  } catch (error) {
    if (error.fields && error.fields.new_password) error.fields.password = error.fields.new_password;
    if (error.code === "invalid_credentials") error.fields = { current_password: "The current password is not right." };
    throw error;
  }
}

/** Change of the password an administrator set; required before anything else. */
export function ChangePasswordNow() {
  const form = useForm({ current_password: "", password: "", password_confirm: "" });
  const submit = form.submit(async ({ current_password: current, password }) => {
    confirmed(form);
    await changeOwnPassword(current, password);
    await load();
    const { home } = await import("../app.js");
    navigate(home(), { replace: true });
  });
  return html`<section class="page narrow">
    <h1>Change your password</h1>
    <${Alert}>Your password was set by an administrator. Choose your own before you continue.<//>
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      <${Field} form=${form} name="current_password" label="Current password" type="password" autocomplete="current-password" required autofocus />
      <${NewPassword} form=${form} label="New password" />
      <${SubmitButton} form=${form} busyLabel="Saving…">Change password<//>
    </form>
  </section>`;
}

/** The profile's password change (current password required). */
export function ChangePassword() {
  const [done, setDone] = useState(false);
  const form = useForm({ current_password: "", password: "", password_confirm: "" });
  const submit = form.submit(async ({ current_password: current, password }) => {
    setDone(false);
    confirmed(form);
    await changeOwnPassword(current, password);
    form.setValues({ current_password: "", password: "", password_confirm: "" });
    setDone(true);
  });
  return html`<form onSubmit=${submit} novalidate>
    ${done ? html`<${Alert}>Password changed. Your other sessions were signed out.<//>` : null}
    <${FormError} form=${form} />
    <${Field} form=${form} name="current_password" label="Current password" type="password" autocomplete="current-password" required />
    <${NewPassword} form=${form} label="New password" />
    <${SubmitButton} form=${form} busyLabel="Saving…">Change password<//>
  </form>`;
}
