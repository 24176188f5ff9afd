// The console's entry point: resumes a session through the refresh cookie, then renders the
// page of the path (routes.js) in the frame, guarding sign-in, owed steps and permissions.
import { html, render, useEffect } from "./lib/preact.js";
import { resume, setHandlers } from "./api.js";
import { navigate, match, useLocation } from "./router.js";
import { routes } from "./routes.js";
import { can, clear, getSession, load, owed, setNotice, useSession } from "./session.js";
import { Frame, Plain, navEntries } from "./components/frame.js";
import { NotAllowed, NotFound } from "./pages/notfound.js";
import { Loading } from "./components/feedback.js";

const OWED_PAGES = { "2fa_enrollment": "/setup-2fa", password_change: "/change-password" };

/** Where a signed-in user starts: the first area they may use, else their profile. */
export function home() {
  const owes = owed(getSession().user);
  if (owes) return OWED_PAGES[owes];
  const first = navEntries(routes)[0];
  return first ? first.path : "/profile";
}

/** Where to go after signing in: `next` if it is a path of this console, else home. */
export function afterSignIn(next) {
  const owes = owed(getSession().user);
  if (owes) return OWED_PAGES[owes];
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/sign-in") ? next : home();
}

function Redirect({ to }) {
  useEffect(() => navigate(to, { replace: true }), [to]);
  return html`<${Loading} />`;
}

let firstPage = true;

function App() {
  const where = useLocation();
  const session = useSession();
  const found = match(routes, where.path);
  const route = found && found.route;

  useEffect(() => {
    document.title = route ? `${route.title} · Gatehouse` : "Not found · Gatehouse";
    // After an in-console navigation (not the first page shown) focus goes to the new page's
    // heading, so keyboard and screen reader users start there.
    if (firstPage) {
      firstPage = false;
      return;
    }
    const main = document.getElementById("main");
    const heading = main && main.querySelector("h1");
    if (heading && (document.activeElement === document.body || !document.activeElement || !document.contains(document.activeElement))) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  }, [where.path]);

  const signedIn = Boolean(session.user);
  if (!route) {
    return signedIn ? html`<${Frame} routes=${routes} path=${where.path}><${NotFound} /><//>` : html`<${Plain}><${NotFound} /><//>`;
  }
  const props = { params: found.params, query: where.query, hash: where.hash };
  if (route.access === "guest") {
    if (signedIn) return html`<${Redirect} to=${afterSignIn(where.query.get("next"))} />`;
    return html`<${Plain}><${route.page} ...${props} /><//>`;
  }
  // A page of a mailed link starts afresh for another link (its token is in the fragment).
  if (route.access === "public") return html`<${Plain}><${route.page} key=${where.hash} ...${props} /><//>`;
  if (!signedIn) {
    return html`<${Redirect} to=${`/sign-in?next=${encodeURIComponent(where.path + window.location.search)}`} />`;
  }
  const owes = owed(session.user);
  if (owes && OWED_PAGES[owes] !== route.path) return html`<${Redirect} to=${OWED_PAGES[owes]} />`;
  if (!owes && Object.values(OWED_PAGES).includes(route.path)) return html`<${Redirect} to=${home()} />`;
  const page = route.permission && !can(route.permission)
    ? html`<${NotAllowed} />`
    : html`<${route.page} key=${`${route.path}:${session.tenantVersion}`} ...${props} />`;
  return html`<${Frame} routes=${routes} path=${where.path} bare=${route.frame === false}>${page}<//>`;
}

function Root() {
  const where = useLocation();
  if (where.path === "/") return html`<${RootRedirect} />`;
  return html`<${App} />`;
}

function RootRedirect() {
  const session = useSession();
  return html`<${Redirect} to=${session.user ? home() : "/sign-in"} />`;
}

async function start() {
  setHandlers({
    onSessionEnded() {
      clear();
      setNotice("Your session has ended. Sign in again.");
      const here = window.location.pathname;
      navigate(here.startsWith("/sign-in") ? here : `/sign-in?next=${encodeURIComponent(here)}`);
    },
    onRequirement() {
      load().then(() => navigate(home())).catch(() => {});
    },
  });
  const target = document.getElementById("app");
  render(html`<${Loading} label="Starting…" />`, target);
  if (await resume()) {
    try {
      await load();
    } catch {
      clear();
    }
  }
  target.textContent = "";
  render(html`<${Root} />`, target);
}

start();
