// /invite#token=...: register through an invitation (the invited email locked), then sign in.
import { html, useEffect, useState } from "../lib/preact.js";
import { api, signIn } from "../api.js";
import { Link, hashParams, navigate } from "../router.js";
import { getSession, load } from "../session.js";
import { FormError, SubmitButton, useForm } from "../components/form.js";
import { Alert, Loading, describe } from "../components/feedback.js";
import { confirmed } from "../components/password.js";
import { RegistrationFields, registrationBody } from "./register.js";

const LINK_PROBLEMS = {
  invitation_not_found: ["This invitation link is not valid", "Check that you opened the whole link from the mail. If it still does not work, ask your administrator to invite you again."],
  invitation_expired: ["This invitation has expired", "Invitations work for 24 hours. Ask your administrator to send a new one."],
  invitation_used: ["This invitation was already used", "If you registered with it, sign in. Otherwise ask your administrator to invite you again."],
};

export function Invite() {
  const [token] = useState(() => hashParams().get("token"));
  const [invitation, setInvitation] = useState(null);
  const [problem, setProblem] = useState(token ? null : "invitation_not_found");
  const [loadError, setLoadError] = useState(null);
  const form = useForm({ username: "", first_name: "", last_name: "", email: "", password: "", password_confirm: "" });

  useEffect(() => {
    if (!token) return;
    api.post("/invitations/preview", { token })
      .then((answer) => {
        setInvitation(answer.data);
        form.set("email", answer.data.email);
      })
      .catch((error) => (LINK_PROBLEMS[error.code] ? setProblem(error.code) : setLoadError(error)));
  }, [token]);

  const submit = form.submit(async (values) => {
    confirmed(form);
    const body = { ...registrationBody(values), email: invitation.email, invitation_token: token };
    try {
      await api.post("/auth/register", body);
    } catch (error) {
      if (LINK_PROBLEMS[error.code]) {
        setProblem(error.code);
        return;
      }
      throw error;
    }
    window.history.replaceState(null, "", "/invite"); // the spent token leaves the address bar
    try {
      const answer = await signIn(body.username, body.password);
      if (answer.second_factor_required) throw new Error("second factor");
      await load();
      const { home } = await import("../app.js");
      navigate(home(), { replace: true });
    } catch {
      navigate("/sign-in?done=registered", { replace: true });
    }
  });

  if (problem) {
    const [title, text] = LINK_PROBLEMS[problem];
    return html`<section>
      <h1>${title}</h1>
      <${Alert} kind="error">${text}<//>
      <p class="links"><${Link} href="/sign-in">Sign in<//></p>
    </section>`;
  }
  if (loadError) return html`<section><h1>Accept invitation</h1><${Alert} kind="error">${describe(loadError)}<//></section>`;
  if (!invitation) return html`<${Loading} label="Opening the invitation…" />`;
  const signedInAs = getSession().user;
  return html`<section>
    <h1>Accept invitation</h1>
    <p>You were invited to Gatehouse${invitation.role ? html` as <strong>${invitation.role}</strong>` : null}. Choose your username and password.</p>
    ${signedInAs ? html`<${Alert}>You are signed in as ${signedInAs.username}; registering signs you in as the new account.<//>` : null}
    <form onSubmit=${submit} novalidate>
      <${FormError} form=${form} />
      <${RegistrationFields} form=${form} lockedEmail=${invitation.email} />
      <${SubmitButton} form=${form} busyLabel="Creating your account…">Create my account<//>
    </form>
  </section>`;
}
