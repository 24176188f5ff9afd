// Sign in: username or email and password, then the second step when 2FA is on.
import { html, useState } from "../lib/preact.js";
import { secondFactor, signIn } from "../api.js";
import { Link, navigate } from "../router.js";
import { load, takeNotice } from "../session.js";
import { Field, FormError, SubmitButton, useForm } from "../components/form.js";
import { Alert } from "../components/feedback.js";
import { useRegistration } from "./register.js";

async function enter(query) {
  await load();
  const { afterSignIn } = await import("../app.js");
  navigate(afterSignIn(query.get("next")), { replace: true });
}

export function SignIn({ query }) {
  const [notice] = useState(() => takeNotice() || (query.get("done") === "reset" ? "Your password was changed. Sign in with the new one." : null)
    || (query.get("done") === "registered" ? "Your account is ready. Sign in." : null));
  const [challenge, setChallenge] = useState(null);
  const registration = useRegistration();  // the "Create an account" link hides only once the API says registration is closed
  const form = useForm({ login: "", password: "" });

  const submit = form.submit(async ({ login, password }) => {
    const answer = await signIn(login.trim(), password);
    if (answer.second_factor_required) {
      setChallenge(answer);
      return;
    }
    await enter(query);
  });

  if (challenge) {
    return html`<${SecondStep} challenge=${challenge} query=${query} restart=${(message) => { setChallenge(null); form.clear(); if (message) form.fail(new Error(message)); }} />`;
  }
  return html`<section>
    <h1>Sign in</h1>
    ${notice ? html`<${Alert}>${notice}<//>` : null}
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      <${Field} form=${form} name="login" label="Username or email" autocomplete="username" required autofocus />
      <${Field} form=${form} name="password" label="Password" type="password" autocomplete="current-password" required />
      <${SubmitButton} form=${form} busyLabel="Signing in…">Sign in<//>
    </form>
    <p class="links"><${Link} href="/forgot-password">Forgot your password?<//>${registration && registration.open === false
      ? null : html` · <${Link} href="/register">Create an account<//>`}</p>
  </section>`;
}

function SecondStep({ challenge, query, restart }) {
  const methods = challenge.methods || ["totp", "recovery_code"];
  const [recovery, setRecovery] = useState(!methods.includes("totp"));
  const form = useForm({ code: "", recovery_code: "" });
  const submit = form.submit(async ({ code, recovery_code: recoveryCode }) => {
    try {
      await secondFactor(challenge.login_ticket, recovery ? { recovery_code: recoveryCode.trim() } : { code: code.replace(/\s+/g, "") });
    } catch (error) {
      if (error.code === "login_ticket_expired" || error.code === "login_ticket_invalid") {
        restart("The sign-in took too long. Sign in again.");
        return;
      }
      throw error;
    }
    await enter(query);
  });
  const toggle = () => {
    form.clear();
    setRecovery(!recovery);
  };
  return html`<section>
    <h1>Two-factor authentication</h1>
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      ${recovery
        ? html`<${Field} key="recovery" form=${form} name="recovery_code" label="Recovery code" autocomplete="off" required autofocus
            hint="One of the recovery codes you saved when you set up two-factor authentication. Each works once." />`
        : html`<${Field} key="code" form=${form} name="code" label="Code from your authenticator app" autocomplete="one-time-code"
            inputMode="numeric" required autofocus hint="The 6-digit code your app shows now." />`}
      <${SubmitButton} form=${form} busyLabel="Checking…">Continue<//>
    </form>
    <p class="links">
      ${methods.includes("recovery_code") && methods.includes("totp")
        ? html`<button type="button" class="link-button" onClick=${toggle}>${recovery ? "Use a code from your app instead" : "Use a recovery code instead"}</button> · `
        : null}
      <button type="button" class="link-button" onClick=${() => restart(null)}>Start over</button>
    </p>
  </section>`;
}
