// Who is signed in, in which tenant, with which permissions: loaded from the API after sign-in
// (GET /me, /me/permissions, /me/tenants) and after a tenant switch. Pages read it with
// useSession() and re-render when it changes.
import { useEffect, useState } from "./lib/preact.js";
import { api, signOut as endSession } from "./api.js";

const state = {
  user: null, // GET /api/v1/me
  access: null, // GET /api/v1/me/permissions: {tenant_id, role, super_admin, permissions, scope, groups}
  tenants: [], // GET /api/v1/me/tenants items
  tenantVersion: 0, // bumped on a tenant switch: pages keyed by it fetch their data again at once
  notice: null, // a message for the sign-in page ("Your session ended...")
};
const listeners = new Set();

function changed() {
  for (const listener of listeners) listener({ ...state });
}

export function getSession() {
  return state;
}

export function useSession() {
  const [snapshot, setSnapshot] = useState({ ...state });
  useEffect(() => {
    listeners.add(setSnapshot);
    setSnapshot({ ...state });
    return () => listeners.delete(setSnapshot);
  }, []);
  return snapshot;
}

/** What the account owes before anything else: "2fa_enrollment" first, then "password_change". */
export function owed(user = state.user) {
  if (!user) return null;
  if (user.totp_enrollment_required) return "2fa_enrollment";
  if (user.must_change_password) return "password_change";
  return null;
}

/** Loads the signed-in user; their permissions and tenants unless something is owed first. */
export async function load() {
  state.user = (await api.get("/me")).data;
  if (owed()) {
    state.access = null;
    state.tenants = [];
  } else {
    const [access, tenants] = await Promise.all([
      api.get("/me/permissions").then((answer) => answer.data).catch(() => null),
      api.get("/me/tenants").then((answer) => answer.data.items).catch(() => []),
    ]);
    state.access = access;
    state.tenants = tenants;
  }
  changed();
  return state;
}

/** Whether the signed-in user holds `permission` in the active tenant (what the API answered;
 * the server still checks every request). A list means any one of them. */
export function can(permission) {
  if (!permission || (Array.isArray(permission) && permission.length === 0)) return true;
  const access = state.access;
  const held = (access && access.permissions) || [];
  return (Array.isArray(permission) ? permission : [permission]).some((one) => held.includes(one));
}

export async function switchTenant(tenantId) {
  await api.post("/me/tenant", { tenant_id: tenantId });
  await load();
  state.tenantVersion += 1;
  changed();
}

export function setNotice(notice) {
  state.notice = notice;
  changed();
}

export function takeNotice() {
  const notice = state.notice;
  state.notice = null;
  return notice;
}

export function clear() {
  state.user = null;
  state.access = null;
  state.tenants = [];
  changed();
}

export async function signOut() {
  await endSession();
  clear();
}
