// Shared pieces of the Roles and Groups pages (pages/roles*.js, pages/groups*.js): the users
// area's kit (forms, dialogs, fields; it links users.css, whose tables and toolbars these pages
// share) plus this area's stylesheet and what only these pages need (the permission matrix,
// the scope fields, the tenant's users to pick from).
// Everything goes through the frame's API client: the public REST API, nothing else.
import { areaStylesheet } from "../components/stylesheet.js";
import { html, useEffect, useState, api } from "./users-kit.js";

export * from "./users-kit.js";
export { ConfirmDialog } from "../components/dialog.js";
export { getSession } from "../session.js";

areaStylesheet("roles");

// Category names as GET /api/v1/permissions gives them, in the matrix's order, with their words.
export const CATEGORIES = [
  ["vm", "VM"], ["storage", "Storage"], ["node", "Node"], ["backup", "Backup"], ["connection", "Connection"],
  ["sync", "Sync"], ["tenant", "Tenant"], ["admin", "Admin"],
];

// Permissions no tenant role can hold (the API refuses them in a role): platform settings.
export const PLATFORM_ONLY = ["admin.settings"];

// The scope of an assignment: ids each key is narrowed to; an empty list means all of them.
export const SCOPE_FIELDS = [
  ["connections", "Connections", "Proxmox connection ids"],
  ["nodes", "Nodes", "node names"],
  ["storages", "Storages", "storage ids"],
  ["vms", "VMs and containers", "VMIDs"],
];

/** The permission catalogue, grouped by category: [[category, label, [permission...]]]. */
export function byCategory(permissions) {
  const known = new Map(CATEGORIES);
  const groups = new Map();
  for (const permission of permissions) {
    if (!groups.has(permission.category)) groups.set(permission.category, []);
    groups.get(permission.category).push(permission);
  }
  const order = [...CATEGORIES.map(([key]) => key), ...[...groups.keys()].filter((key) => !known.has(key))];
  return order.filter((key) => groups.has(key))
    .map((key) => [key, known.get(key) || key, groups.get(key)]);
}

/** GET /api/v1/permissions: undefined while loading, the list, or an ApiError. */
export function useCatalogue() {
  const [catalogue, setCatalogue] = useState(undefined);
  useEffect(() => {
    let live = true;
    api.get("/permissions").then((answer) => { if (live) setCatalogue(answer.data.items); },
                                 (problem) => { if (live) setCatalogue(problem); });
    return () => { live = false; };
  }, []);
  return catalogue;
}

/** Why the signed-in user cannot tick `permission` in a role, or null when they can. */
export function cannotGrant(permission, held) {
  if (PLATFORM_ONLY.includes(permission)) return "Platform settings: only super admins hold it, never a role.";
  if (!held.includes(permission)) return "You do not hold it, so you cannot grant it.";
  return null;
}

/**
 * The permission matrix: one fieldset per category, a checkbox per permission.
 * value: the ticked names; onChange(names) (absent: read-only); held: what the actor holds.
 */
export function PermissionMatrix({ catalogue, value, onChange, held, error }) {
  const readOnly = !onChange;
  const ticked = new Set(value);
  const toggle = (name, on) => {
    const next = new Set(ticked);
    if (on) next.add(name); else next.delete(name);
    onChange([...next].sort());
  };
  return html`<div class=${`matrix${error ? " has-error" : ""}`} role="group" aria-label="Permissions">
    ${error ? html`<div class="field-error" role="alert">${error}</div>` : null}
    ${byCategory(catalogue).map(([key, label, permissions]) => html`<fieldset class="matrix-category" key=${key}
        data-category=${key}>
      <legend>${label}</legend>
      ${permissions.map((permission) => {
        const why = readOnly ? null : cannotGrant(permission.name, held);
        const id = `perm-${permission.name.replace(/\W/g, "-")}`;
        const on = ticked.has(permission.name);
        return html`<div class=${`matrix-item${why ? " unavailable" : ""}${on ? " on" : ""}`} key=${permission.name}>
          <input type="checkbox" id=${id} checked=${on} disabled=${readOnly || (why && !on)}
                 aria-describedby=${`${id}-about`}
                 onChange=${(event) => toggle(permission.name, event.currentTarget.checked)} />
          <label for=${id}><code>${permission.name}</code></label>
          <div class="matrix-about" id=${`${id}-about`}>${permission.dangerous ? html`<span class="tag danger-tag">sensitive</span> ` : null
            }${permission.description}${why ? html`<br /><em>${why}</em>` : null}</div>
        </div>`;
      })}
    </fieldset>`)}
  </div>`;
}

/** The tenant's users to pick from (GET /api/v1/users needs admin.users), the first 100 matching
 * `q` (username, name or email; typed in UserSearch): undefined while loading, the list (its
 * `more` says whether more users match than it holds), or null when the caller may not read them. */
export function useTenantUsers(reloads = 0, q = "") {
  const [users, setUsers] = useState(undefined);
  const query = q.trim();
  useEffect(() => {
    let live = true;
    const read = () => api.get("/users", { limit: 100, sort: "name", order: "asc", ...(query ? { q: query } : {}) }).then(
      (answer) => {
        if (!live) return;
        const list = answer.data.items;
        list.more = Boolean(answer.data.next_cursor);
        setUsers(list);
      },
      () => { if (live) setUsers(null); },
    );
    const timer = setTimeout(read, query ? 250 : 0);  // while typing: one request once the typing pauses
    return () => { live = false; clearTimeout(timer); };
  }, [reloads, query]);
  return users;
}

/** The search box above a user picker: the list shows the users matching it (the API searches). */
export function UserSearch({ value, onInput, users, id = "user-search" }) {
  if (users === null) return null;
  return html`<div class="field user-search">
    <label for=${id}>Find a user</label>
    <input id=${id} type="search" value=${value} autocomplete="off" aria-describedby=${`${id}-hint`}
           onInput=${(event) => onInput(event.currentTarget.value)} />
    <div class="hint" id=${`${id}-hint`}>${users && users.more
      ? `Showing the first ${users.length} matching users: type part of a username, name or email to narrow the list.`
      : "Username, name or email: the list below shows who matches."}</div>
  </div>`;
}

export function userLabel(user) {
  const name = user.full_name || [user.first_name, user.last_name].filter(Boolean).join(" ");
  return name ? `${name} (${user.username || user.email})` : user.username || user.email;
}

/** A scope in words: "all" or the ids of each narrowed key. */
export function scopeWords(scope) {
  const parts = SCOPE_FIELDS.filter(([key]) => scope && (scope[key] || []).length)
    .map(([key, label]) => `${label}: ${scope[key].join(", ")}`);
  return parts.length ? parts.join("; ") : "Everything in the tenant";
}
