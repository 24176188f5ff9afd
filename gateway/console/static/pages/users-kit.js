// Shared pieces of the user administration pages (pages/users*.js): the frame's API client,
// forms and dialogs, plus what only these pages need (select and textarea fields bound to a
// form, the generated password shown once, the rules of which row action applies).
// Everything goes through the frame's API client: the public REST API, nothing else.
import { html, useEffect, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { CopyButton } from "../components/secrets.js";
import { areaStylesheet } from "../components/stylesheet.js";

export { html, useEffect, useState, api };
export { useForm, Field, FormError, SubmitButton, SelectField, TextareaField } from "../components/form.js";
export { when } from "../components/format.js";
export { Dialog } from "../components/dialog.js";
export { Alert, ErrorAlert, EmptyState, Loading, describe } from "../components/feedback.js";
export { navigate, Link } from "../router.js";
export { useSession, can } from "../session.js";

areaStylesheet("users");

/** A generated password, shown this once: selectable text and a copy button. */
export function SecretOnce({ label, value }) {
  return html`<div class="secret-once">
    <p><b>${label}</b></p>
    <p><code class="secret" data-secret="generated-password">${value}</code> <${CopyButton} text=${value} /></p>
    <p class="hint">Shown this once: Gatehouse keeps only a hash of it. Hand it to the user by a safe way; they must
      change it when they first sign in.</p>
  </div>`;
}

// --- which row action applies ----------------------------------------------------------------

/** Why `action` is unavailable on this user's row, or null when it is allowed. */
export function protection(user, me, action) {
  const own = Boolean(me) && user.id === me.id;
  if (action === "suspend" || action === "remove") {
    if (own) return "This is your own account: another administrator must do this.";
    if (user.is_first_admin) return "The first administrator is protected: they cannot be suspended or removed.";
  }
  if (action === "role" && user.is_first_admin) return "The first administrator's role cannot change.";
  if (action === "disable2fa") {
    if (own) return "This is your own 2FA: turn it off from your profile instead (an administrator cannot lock themself out).";
    if (user.totp_required_by_policy) {
      return "The policy \"Require 2FA for super_admin\" applies to this user: they would have to enroll again at once.";
    }
  }
  return null;
}

// --- formatting ------------------------------------------------------------------------------

export function fullName(user) {
  return user.full_name || [user.first_name, user.last_name].filter(Boolean).join(" ") || "—";
}

export const STATUS_WORDS = { pending: "Pending", active: "Active", suspended: "Suspended", invited: "Invited" };

export function StatusBadge({ status }) {
  return html`<span class=${`badge status-${status}`}>${STATUS_WORDS[status] || status}</span>`;
}

export function twoFactorWords(user) {
  if (user.totp_enrolled) return user.totp_required || user.totp_required_by_policy ? "On (required)" : "On";
  if (user.totp_enrollment_required || user.totp_required || user.totp_required_by_policy) return "Required, not set up";
  return "Off";
}

export function splitList(text) {
  return (text || "").split(/[\s,;]+/).map((item) => item.trim()).filter(Boolean);
}

// --- choices ---------------------------------------------------------------------------------

/** Built-in roles, offered when the caller may not read the role list (that needs admin.rbac). */
export const BUILTIN_ROLES = ["viewer", "operator", "admin", "super_admin"];

/** Role names to pick from: GET /api/v1/roles when allowed, else the built-in ones. */
export function useRoles() {
  const [roles, setRoles] = useState(BUILTIN_ROLES);
  useEffect(() => {
    let live = true;
    api.get("/roles").then((answer) => { if (live) setRoles(answer.data.items.map((role) => role.name)); }, () => {});
    return () => { live = false; };
  }, []);
  return roles;
}

export function RoleOptions({ roles, current }) {
  const names = current && !roles.includes(current) ? [current, ...roles] : roles;
  return names.map((name) => html`<option value=${name} key=${name}>${name}</option>`);
}

/** LDAP groups to offer; undefined while loading, null when the caller may not read them (admin.rbac). */
export function useGroups() {
  const [groups, setGroups] = useState(undefined);
  useEffect(() => {
    let live = true;
    api.get("/groups", { limit: 200 }).then(
      (answer) => { if (live) setGroups(answer.data.items); },
      () => { if (live) setGroups(null); },
    );
    return () => { live = false; };
  }, []);
  return groups;
}
