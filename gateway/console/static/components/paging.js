// Lists read in pages of the API ({items, next_cursor, total}): what is shown out of how many, and
// a "Show more" button that appends the next page (the list never silently stops at its limit).
import { html, useState } from "../lib/preact.js";
import { api } from "../api.js";
import { describe } from "./feedback.js";

/** The next page of `path` (the `query` of the first one) appended to `page`: a new page object. */
export async function appendNextPage(path, query, page) {
  const next = (await api.get(path, { ...query, cursor: page.next_cursor })).data;
  return { ...next, items: [...page.items, ...next.items] };
}

/**
 * "Showing N of M" under a list, with a "Show more" button while the API has a next page.
 * page: the list answer shown so far; onMore(): a promise that loads the next page; what: "members".
 */
export function MoreRows({ page, onMore, what = "items" }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  if (!page || !page.next_cursor) return null;
  const shown = page.items.length;
  const total = typeof page.total === "number" && page.total >= shown ? page.total : null;
  const more = async () => {
    setBusy(true);
    setError(null);
    try {
      await onMore();
    } catch (problem) {
      setError(problem);
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="more-rows">
    <span class="hint">${total !== null ? `Showing ${shown} of ${total} ${what}.` : `Showing the first ${shown} ${what}; there are more.`}</span>
    <button type="button" class="button small" onClick=${more} disabled=${busy} aria-busy=${busy ? "true" : undefined}>
      ${busy ? "Loading…" : `Show more ${what}`}</button>
    ${error ? html`<span class="field-error" role="alert">${describe(error)}</span>` : null}
  </div>`;
}
