// The frame around signed-in pages: top bar (product, tenant selector, user menu) and the
// navigation by area, showing only the areas whose permission the user holds.
import { html, useEffect, useRef, useState } from "../lib/preact.js";
import { Link, navigate } from "../router.js";
import { can, signOut, switchTenant, useSession } from "../session.js";
import { describe } from "./feedback.js";

export function navEntries(routes) {
  return routes.filter((route) => route.nav && can(route.permission));
}

function TenantSelector({ session }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const tenants = session.tenants || [];
  const active = tenants.find((tenant) => tenant.active);
  if (tenants.length === 0) return null;
  if (tenants.length === 1) {
    return html`<span class="tenant-name" title="Tenant">${active ? active.tenant_name : tenants[0].tenant_name}</span>`;
  }
  const change = async (event) => {
    const tenantId = event.currentTarget.value;
    setBusy(true);
    setError(null);
    try {
      await switchTenant(tenantId);
    } catch (failure) {
      setError(describe(failure));
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="tenant-selector">
    <label for="tenant-select">Tenant</label>
    <select id="tenant-select" value=${active ? active.tenant_id : ""} onChange=${change} disabled=${busy} aria-busy=${busy ? "true" : undefined}>
      ${active ? null : html`<option value="" disabled>Choose a tenant</option>`}
      ${tenants.map((tenant) => html`<option value=${tenant.tenant_id} key=${tenant.tenant_id}>${tenant.tenant_name}</option>`)}
    </select>
    ${error ? html`<span class="field-error" role="alert">${error}</span>` : null}
  </div>`;
}

function UserMenu({ session }) {
  const [open, setOpen] = useState(false);
  const button = useRef(null);
  const menu = useRef(null);
  useEffect(() => {
    if (!open) return undefined;
    const first = menu.current && menu.current.querySelector("a, button");
    if (first) first.focus();
    const away = (event) => {
      if (menu.current && !menu.current.contains(event.target) && event.target !== button.current) setOpen(false);
    };
    document.addEventListener("click", away);
    return () => document.removeEventListener("click", away);
  }, [open]);
  const close = () => {
    setOpen(false);
    if (button.current) button.current.focus();
  };
  const keys = (event) => {
    if (event.key === "Escape") close();
  };
  const leave = async () => {
    setOpen(false);
    await signOut();
    navigate("/sign-in");
  };
  const user = session.user || {};
  const name = user.full_name || user.username || "Account";
  return html`<div class="user-menu" onKeyDown=${keys}>
    <button type="button" class="user-button" ref=${button} aria-haspopup="true" aria-expanded=${open ? "true" : "false"}
      aria-controls="user-menu-list" onClick=${() => setOpen(!open)}>
      <span class="avatar" aria-hidden="true">${(name[0] || "?").toUpperCase()}</span>
      <span class="user-name">${name}</span>
    </button>
    ${open ? html`<ul class="menu" id="user-menu-list" ref=${menu}>
      <li><${Link} href="/profile" onClick=${() => setOpen(false)}>Profile<//></li>
      <li><button type="button" onClick=${leave}>Sign out</button></li>
    </ul>` : null}
  </div>`;
}

export function Frame({ routes, path, children, bare = false }) {
  const session = useSession();
  const entries = bare ? [] : navEntries(routes);
  return html`<div class=${`frame${entries.length ? " with-nav" : ""}`}>
    <a class="skip-link" href="#main">Skip to content</a>
    <header class="topbar">
      <${Link} href="/" class="brand">Gatehouse<//>
      <div class="topbar-right">
        ${bare ? null : html`<${TenantSelector} session=${session} />`}
        <${UserMenu} session=${session} />
      </div>
    </header>
    ${entries.length ? html`<nav class="nav" aria-label="Areas"><ul>
      ${entries.map((route) => html`<li key=${route.path}>
        <${Link} href=${route.path} aria-current=${path === route.path || path.startsWith(`${route.path}/`) ? "page" : undefined}>${route.nav}<//>
      </li>`)}
    </ul></nav>` : null}
    <main id="main" class="main" tabindex="-1">${children}</main>
  </div>`;
}

/** Pages without sign-in (sign in, register, links from mails): a centered card. */
export function Plain({ children }) {
  return html`<div class="plain">
    <header class="plain-brand"><${Link} href="/sign-in" class="brand">Gatehouse<//></header>
    <main id="main" class="card" tabindex="-1">${children}</main>
  </div>`;
}
