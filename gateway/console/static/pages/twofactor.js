// Two-factor authentication (TOTP): enroll with the QR code, confirm with a code, recovery codes
// shown once; renew codes, replace or remove the factor. Used by the profile and by the forced
// enrollment page.
import { html, useEffect, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { navigate } from "../router.js";
import { load } from "../session.js";
import { Field, FormError, SubmitButton, useForm } from "../components/form.js";
import { Alert, ErrorAlert, Loading } from "../components/feedback.js";
import { CopyButton, DownloadButton } from "../components/secrets.js";

/** The proof a 2FA change needs: the current password, or (when enrolled) a current code. */
function proofBody(values, useCode) {
  return useCode ? { code: values.code.replace(/\s+/g, "") } : { password: values.password };
}

/** A refused proof is shown next to its field. */
async function proving(action) {
  try {
    return await action();
  } catch (error) {
    if (error.code === "invalid_credentials") error.fields = { password: "The password is not right." };
    else if (error.code === "invalid_code" || error.code === "code_reused") {
      error.fields = { code: error.code === "code_reused" ? "That code was already used. Wait for the next one." : "That code is not right." };
    }
    throw error;
  }
}

function ProofFields({ form, allowCode, useCode, setUseCode }) {
  return html`
    ${useCode
      ? html`<${Field} key="code" form=${form} name="code" label="Current code from your authenticator app" inputMode="numeric" autocomplete="one-time-code" required />`
      : html`<${Field} key="password" form=${form} name="password" label="Your password" type="password" autocomplete="current-password" required />`}
    ${allowCode ? html`<p><button type="button" class="link-button" onClick=${() => { form.clear(); setUseCode(!useCode); }}>
      ${useCode ? "Confirm with your password instead" : "Confirm with a code instead"}</button></p>` : null}`;
}

export function RecoveryCodes({ codes, onDone, doneLabel = "I have saved them" }) {
  const text = `Gatehouse recovery codes (each works once)\n\n${codes.join("\n")}\n`;
  return html`<div class="recovery">
    <${Alert} kind="warning">Save these recovery codes now: they are shown only this once. Each one lets you sign in once without your authenticator app.<//>
    <ol class="recovery-codes">${codes.map((code) => html`<li key=${code}><code>${code}</code></li>`)}</ol>
    <div class="actions">
      <${CopyButton} text=${codes.join("\n")} label="Copy codes" />
      <${DownloadButton} text=${text} filename="gatehouse-recovery-codes.txt" label="Download codes" />
      ${onDone ? html`<button type="button" class="button primary" onClick=${onDone}>${doneLabel}</button>` : null}
    </div>
  </div>`;
}

/** Start (or replace) an enrollment, show the QR code and secret, confirm with a code. */
export function Enrollment({ status, onEnrolled, onCancel }) {
  const [started, setStarted] = useState(null);
  const [codes, setCodes] = useState(null);
  const [useCode, setUseCode] = useState(false);
  const start = useForm({ password: "", code: "" });
  const confirm = useForm({ code: "" });

  const begin = start.submit(async (values) => {
    const answer = await proving(() => api.post("/me/2fa/enrollment", proofBody(values, useCode)));
    setStarted(answer.data);
  });
  const finish = confirm.submit(async ({ code }) => {
    const answer = await proving(() => api.post("/me/2fa/enrollment/confirm", { code: code.replace(/\s+/g, "") }));
    setCodes(answer.data.recovery_codes);
  });

  if (codes) {
    return html`<div>
      <h3>Two-factor authentication is on</h3>
      <${RecoveryCodes} codes=${codes} onDone=${onEnrolled} doneLabel="I have saved them, continue" />
    </div>`;
  }
  if (started) {
    return html`<div class="enrollment">
      <ol class="steps">
        <li>Open your authenticator app (any TOTP app) and scan this QR code.
          <div class="qr"><img src=${`data:image/png;base64,${started.qr_png}`} width="200" height="200"
            alt="QR code of your two-factor secret; the same secret is shown as text below" /></div>
          <p>Cannot scan it? Enter this key in the app instead:</p>
          <p><code class="secret" id="totp-secret">${started.secret}</code> <${CopyButton} text=${started.secret} label="Copy key" /></p>
          <p class="hint">${started.digits || 6} digits, every ${started.period || 30} seconds. Confirm before ${new Date(started.expires_at).toLocaleTimeString()}.</p>
        </li>
        <li>Enter the code the app shows now.
          <form onSubmit=${finish} novalidate>
            <${FormError} form=${confirm} />
            <${Field} form=${confirm} name="code" label="Code from the app" inputMode="numeric" autocomplete="one-time-code" required autofocus />
            <div class="actions">
              <${SubmitButton} form=${confirm} busyLabel="Checking…">Turn on two-factor authentication<//>
              ${onCancel ? html`<button type="button" class="button" onClick=${onCancel}>Cancel</button>` : null}
            </div>
          </form>
        </li>
      </ol>
    </div>`;
  }
  const replacing = Boolean(status && status.enrolled);
  return html`<form onSubmit=${begin} novalidate>
    <p>${replacing ? "A new secret replaces your current one once you confirm it; until then the current one keeps working." : "First confirm it is you."}</p>
    <${FormError} form=${start} />
    <${ProofFields} form=${start} allowCode=${replacing} useCode=${useCode} setUseCode=${setUseCode} />
    <div class="actions">
      <${SubmitButton} form=${start} busyLabel="Starting…">${replacing ? "Start replacing" : "Set up two-factor authentication"}<//>
      ${onCancel ? html`<button type="button" class="button" onClick=${onCancel}>Cancel</button>` : null}
    </div>
  </form>`;
}

/** A 2FA change that needs proof: renew recovery codes, or remove the factor. */
function ProofAction({ title, explain, submitLabel, busyLabel, danger, run, onCancel }) {
  const [useCode, setUseCode] = useState(false);
  const form = useForm({ password: "", code: "" });
  const submit = form.submit((values) => proving(() => run(proofBody(values, useCode))));
  return html`<form onSubmit=${submit} novalidate class="subform">
    <h3>${title}</h3>
    <p>${explain}</p>
    <${FormError} form=${form} />
    <${ProofFields} form=${form} allowCode=${true} useCode=${useCode} setUseCode=${setUseCode} />
    <div class="actions">
      <${SubmitButton} form=${form} kind=${danger ? "danger" : "primary"} busyLabel=${busyLabel}>${submitLabel}<//>
      <button type="button" class="button" onClick=${onCancel}>Cancel</button>
    </div>
  </form>`;
}

/** The profile's 2FA section. */
export function TwoFactor() {
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  const [mode, setMode] = useState(null); // null | "enroll" | "renew" | "remove"
  const [codes, setCodes] = useState(null);
  const [notice, setNotice] = useState(null);
  const refresh = () => api.get("/me/2fa").then((answer) => setStatus(answer.data)).catch(setError);
  useEffect(() => { refresh(); }, []);

  if (error) return html`<${ErrorAlert} error=${error} />`;
  if (!status) return html`<${Loading} />`;
  const done = (message) => {
    setMode(null);
    setNotice(message);
    refresh();
    load().catch(() => {});
  };
  if (codes) {
    return html`<${RecoveryCodes} codes=${codes} onDone=${() => { setCodes(null); done("New recovery codes saved; the old ones no longer work."); }} />`;
  }
  if (mode === "enroll") {
    return html`<${Enrollment} status=${status} onEnrolled=${() => done("Two-factor authentication is on.")} onCancel=${() => setMode(null)} />`;
  }
  if (mode === "renew") {
    return html`<${ProofAction} title="New recovery codes" explain="Your current recovery codes stop working." submitLabel="Make new codes"
      busyLabel="Making codes…" onCancel=${() => setMode(null)}
      run=${async (proof) => { const answer = await api.post("/me/2fa/recovery-codes", proof); setMode(null); setCodes(answer.data.recovery_codes); }} />`;
  }
  if (mode === "remove") {
    return html`<${ProofAction} title="Turn off two-factor authentication" explain="Signing in will need only your password." submitLabel="Turn off"
      busyLabel="Turning off…" danger=${true} onCancel=${() => setMode(null)}
      run=${async (proof) => { await api.request("DELETE", "/me/2fa", { body: proof }); done("Two-factor authentication is off."); }} />`;
  }
  const required = status.required || status.required_by_policy;
  return html`<div>
    ${notice ? html`<${Alert}>${notice}<//>` : null}
    ${status.enrolled
      ? html`<p><strong>On</strong> since ${new Date(status.enrolled_at).toLocaleDateString()}. Recovery codes left: <strong>${status.recovery_codes_left}</strong>.</p>`
      : html`<p><strong>Off.</strong> Protect your account with a code from an authenticator app at each sign-in.</p>`}
    ${required ? html`<p class="hint">${status.required_by_policy ? "The policy requires two-factor authentication for your account." : "An administrator requires two-factor authentication for your account."}</p>` : null}
    ${status.second_factor_locked ? html`<${Alert} kind="warning">Two-factor sign-in is locked after too many wrong codes. An administrator must unlock it.<//>` : null}
    <div class="actions">
      ${status.enrolled
        ? html`
          <button type="button" class="button" onClick=${() => { setNotice(null); setMode("renew"); }}>New recovery codes</button>
          <button type="button" class="button" onClick=${() => { setNotice(null); setMode("enroll"); }}>Replace authenticator</button>
          ${required
            ? html`<span class="hint">Turning it off is not possible while it is required.</span>`
            : html`<button type="button" class="button danger" onClick=${() => { setNotice(null); setMode("remove"); }}>Turn off</button>`}`
        : html`<button type="button" class="button primary" onClick=${() => { setNotice(null); setMode("enroll"); }}>Set up two-factor authentication</button>`}
    </div>
  </div>`;
}

/** The forced enrollment: required before anything else. */
export function EnrollNow() {
  const [status, setStatus] = useState(null);
  useEffect(() => { api.get("/me/2fa").then((answer) => setStatus(answer.data)).catch(() => setStatus({})); }, []);
  const enrolled = async () => {
    await load();
    const { home } = await import("../app.js");
    navigate(home(), { replace: true });
  };
  return html`<section class="page narrow">
    <h1>Set up two-factor authentication</h1>
    <${Alert}>${status && status.required_by_policy ? "The policy requires" : "An administrator requires"} two-factor authentication for your account. Set it up to continue.<//>
    ${status ? html`<${Enrollment} status=${status} onEnrolled=${enrolled} />` : html`<${Loading} />`}
  </section>`;
}
