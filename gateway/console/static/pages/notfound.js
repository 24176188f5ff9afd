import { html } from "../lib/preact.js";
import { Link } from "../router.js";

export function NotFound() {
  return html`<section class="page">
    <h1>Page not found</h1>
    <p>There is no page at <code>${window.location.pathname}</code>.</p>
    <p><${Link} href="/">Go to the start page<//></p>
  </section>`;
}

export function NotAllowed() {
  return html`<section class="page">
    <h1>Not allowed</h1>
    <p>Your role in this tenant does not allow this page. Ask an administrator for access, or switch tenant in the top bar.</p>
    <p><${Link} href="/">Go to the start page<//></p>
  </section>`;
}
