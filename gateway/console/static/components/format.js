// Dates and times in the reader's locale, the same way on every page.

/** An API timestamp (ISO 8601) as a local date and time: "—" when absent, the text itself when it
 * is no date. `seconds`: with seconds (audit records, sync runs), else to the minute. */
export function when(iso, seconds = false) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: seconds ? "medium" : "short" });
}
