// Client-side routing on the History API: the gateway serves the console page at every
// non-API path, and this module picks the page of the path (routes.js).
import { html, useEffect, useState } from "./lib/preact.js";

const listeners = new Set();

export function location() {
  return { path: window.location.pathname, query: new URLSearchParams(window.location.search), hash: window.location.hash };
}

/** Goes to `to` (a path, maybe with ?query or #fragment) without reloading. */
export function navigate(to, { replace = false } = {}) {
  if (to === window.location.pathname + window.location.search + window.location.hash) {
    for (const listener of listeners) listener(location());
    return;
  }
  window.history[replace ? "replaceState" : "pushState"](null, "", to);
  for (const listener of listeners) listener(location());
}

export function useLocation() {
  const [current, setCurrent] = useState(location());
  useEffect(() => {
    const update = () => setCurrent(location());
    listeners.add(setCurrent);
    update(); // a child's effect may have navigated before this effect ran (children's effects run first)
    window.addEventListener("popstate", update);
    window.addEventListener("hashchange", update); // another link from a mail pasted into this tab
    return () => {
      listeners.delete(setCurrent);
      window.removeEventListener("popstate", update);
      window.removeEventListener("hashchange", update);
    };
  }, []);
  return current;
}

/** The fragment's parameters: `/invite#token=...` -> {token: "..."}. Tokens ride in the fragment,
 * which the browser never sends to a server. */
export function hashParams() {
  return new URLSearchParams(window.location.hash.replace(/^#/, ""));
}

/** {route, params} of the first route whose pattern (`/users/:id`) matches `path`, or null. */
export function match(routes, path) {
  const parts = path.replace(/\/+$/, "").split("/");
  for (const route of routes) {
    const pattern = route.path.replace(/\/+$/, "").split("/");
    if (pattern.length !== parts.length) continue;
    const params = {};
    let ok = true;
    pattern.forEach((piece, index) => {
      if (piece.startsWith(":")) params[piece.slice(1)] = decodeURIComponent(parts[index]);
      else if (piece !== parts[index]) ok = false;
    });
    if (ok) return { route, params };
  }
  return null;
}

/** An in-console link: <${Link} href="/profile">Profile<//>. */
export function Link({ href, children, ...rest }) {
  const click = (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return html`<a href=${href} onClick=${click} ...${rest}>${children}</a>`;
}
