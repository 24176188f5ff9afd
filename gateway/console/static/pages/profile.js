// The signed-in user's own page: account, password, two-factor authentication, sessions.
import { when } from "../components/format.js";
import { html, useEffect, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { load, useSession } from "../session.js";
import { Field, FormError, SubmitButton, useForm } from "../components/form.js";
import { Alert, EmptyState, ErrorAlert, Loading } from "../components/feedback.js";
import { ConfirmDialog } from "../components/dialog.js";
import { ChangePassword } from "./password.js";
import { TwoFactor } from "./twofactor.js";

function Account({ user, access }) {
  const [saved, setSaved] = useState(false);
  const form = useForm({ first_name: user.first_name || "", last_name: user.last_name || "" });
  const submit = form.submit(async (values) => {
    setSaved(false);
    await api.patch("/me", { first_name: values.first_name.trim(), last_name: values.last_name.trim() });
    await load();
    setSaved(true);
  });
  return html`<div>
    <dl class="facts">
      <dt>Username</dt><dd>${user.username}</dd>
      <dt>Email</dt><dd>${user.email}</dd>
      ${access ? html`<dt>Role in this tenant</dt><dd>${access.super_admin ? "super admin" : access.role || "none"}</dd>` : null}
    </dl>
    <p class="hint">An administrator with user administration changes usernames and email addresses.</p>
    <form onSubmit=${submit} novalidate>
      ${saved ? html`<${Alert}>Your name was saved.<//>` : null}
      <${FormError} form=${form} />
      <div class="field-row">
        <${Field} form=${form} name="first_name" label="First name" autocomplete="given-name" required />
        <${Field} form=${form} name="last_name" label="Last name" autocomplete="family-name" required />
      </div>
      <${SubmitButton} form=${form} busyLabel="Saving…">Save name<//>
    </form>
  </div>`;
}

function Sessions() {
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(null);
  const [notice, setNotice] = useState(null);
  const [confirming, setConfirming] = useState(false);
  const refresh = () => api.get("/me/sessions", { limit: 100 }).then((answer) => setPage(answer.data)).catch(setError);
  useEffect(() => { refresh(); }, []);

  const revoke = async (session) => {
    setBusy(session.id);
    setError(null);
    try {
      await api.del(`/me/sessions/${encodeURIComponent(session.id)}`);
      setNotice("The session was ended.");
      await refresh();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(null);
    }
  };
  const revokeOthers = async () => {
    setError(null);
    await api.del("/me/sessions");
    setNotice("Every other session was ended.");
    await refresh();
  };
  if (!page && !error) return html`<${Loading} label="Loading your sessions…" />`;
  const items = page ? page.items : [];
  const others = items.filter((session) => !session.current);
  return html`<div>
    ${notice ? html`<${Alert}>${notice}<//>` : null}
    <${ErrorAlert} error=${error} />
    ${items.length === 0 ? html`<${EmptyState} title="No sessions">Sign in again to start one.<//>` : html`
    <div class="table-wrap"><table class="table">
      <caption class="visually-hidden">Your sessions</caption>
      <thead><tr><th scope="col">Browser or client</th><th scope="col">Address</th><th scope="col">Signed in</th><th scope="col">Last used</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${items.map((session) => html`<tr key=${session.id}>
        <td data-label="Client">${session.user_agent || "unknown"}${session.current ? html` <span class="badge">this session</span>` : null}</td>
        <td data-label="Address">${session.ip || "—"}</td>
        <td data-label="Signed in">${when(session.created_at)}</td>
        <td data-label="Last used">${when(session.last_used_at)}</td>
        <td>${session.current ? null : html`<button type="button" class="button small" disabled=${busy === session.id}
          aria-label=${`End the session from ${session.ip || "unknown address"} started ${when(session.created_at)}`}
          onClick=${() => revoke(session)}>${busy === session.id ? "Ending…" : "End"}</button>`}</td>
      </tr>`)}</tbody>
    </table></div>`}
    ${others.length ? html`<div class="actions"><button type="button" class="button" onClick=${() => setConfirming(true)}>End every other session</button></div>`
      : html`<p class="hint">This is your only session. Sessions on other devices would be listed here.</p>`}
    <${ConfirmDialog} open=${confirming} title="End every other session?" confirmLabel="End them" busyLabel="Ending…"
      danger=${true} onConfirm=${revokeOthers} onClose=${() => setConfirming(false)}>
      <p>Every browser and script signed in as you, except this one, is signed out at once.</p>
    <//>
  </div>`;
}

export function Profile() {
  const session = useSession();
  const user = session.user;
  if (!user) return html`<${Loading} />`;
  return html`<section class="page">
    <h1>Profile</h1>
    <section class="panel" aria-labelledby="account-title"><h2 id="account-title">Account</h2><${Account} user=${user} access=${session.access} /></section>
    <section class="panel" aria-labelledby="password-title"><h2 id="password-title">Password</h2><${ChangePassword} /></section>
    <section class="panel" aria-labelledby="twofactor-title"><h2 id="twofactor-title">Two-factor authentication</h2><${TwoFactor} /></section>
    <section class="panel" aria-labelledby="sessions-title"><h2 id="sessions-title">Sessions</h2><${Sessions} /></section>
  </section>`;
}
