// A new password's field with the policy shown as the user types (GET /api/v1/auth/password-policy,
// anonymous and read-only), and its confirmation. The server checks the policy again.
import { html, useEffect, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { Field } from "./form.js";

let policyAnswer = null;

export function usePasswordPolicy() {
  const [policy, setPolicy] = useState(null);
  useEffect(() => {
    policyAnswer = policyAnswer || api.get("/auth/password-policy").then((answer) => answer.data).catch(() => { policyAnswer = null; return null; });
    let live = true;
    policyAnswer.then((found) => live && setPolicy(found));
    return () => { live = false; };
  }, []);
  return policy;
}

function Rule({ met, children }) {
  return html`<li class=${met === null ? "rule" : met ? "rule met" : "rule unmet"}>
    <span class="rule-mark" aria-hidden="true">${met === null ? "•" : met ? "✓" : "✗"}</span>
    ${children}${met === null ? null : html`<span class="visually-hidden">${met ? " (met)" : " (not met yet)"}</span>`}
  </li>`;
}

/** `name`: the password field; `confirm`: its repetition's field name (checked here only). */
export function NewPassword({ form, name = "password", confirm = "password_confirm", label = "Password" }) {
  const policy = usePasswordPolicy();
  const value = form.values[name] || "";
  const typed = value.length > 0;
  const length = [...value].length;
  const repeated = form.values[confirm] || "";
  return html`<div class="new-password">
    <${Field} form=${form} name=${name} label=${label} type="password" autocomplete="new-password" required>
      <ul class="rules" aria-live="polite">
        ${policy ? html`
          <${Rule} met=${typed ? length >= policy.min_length : null}>At least ${policy.min_length} characters<//>
          <${Rule} met=${typed ? length <= policy.max_length : null}>At most ${policy.max_length} characters<//>
          ${policy.refuse_common ? html`<${Rule} met=${null}>Not a commonly used password (checked when you submit)<//>` : null}
        ` : html`<li class="rule">At least 8 characters</li>`}
      </ul>
    <//>
    <${Field} form=${form} name=${confirm} label="Repeat the password" type="password" autocomplete="new-password" required>
      ${repeated && repeated !== value ? html`<span class="unmet">The two passwords differ.</span>` : null}
    <//>
  </div>`;
}

/** Refuses a differing confirmation before asking the server; true when both match. */
export function confirmed(form, name = "password", confirm = "password_confirm") {
  if (form.values[name] !== form.values[confirm]) {
    const error = new Error("The two passwords differ.");
    error.fields = { [confirm]: "The two passwords differ." };
    throw Object.assign(error, { localFields: true });
  }
  return true;
}
