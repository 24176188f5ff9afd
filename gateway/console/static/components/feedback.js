// Messages in words: errors of the API, notices, empty lists, progress.
import { html } from "../lib/preact.js";

// Plain words for codes whose API message is written for scripts.
const WORDS = {
  network_error: "The server cannot be reached. Check your connection and try again.",
  invalid_credentials: "The username/email or password is not right.",
  account_not_active: "This account cannot sign in: it is waiting for approval or has been suspended. Ask an administrator.",
  second_factor_locked: "Two-factor sign-in is locked after too many wrong codes. An administrator must unlock the account.",
  invalid_code: "That code is not right. Check your authenticator app and try again.",
  code_reused: "That code was already used. Wait for your app to show the next one.",
  recovery_code_invalid: "That recovery code is not right or was already used.",
  login_ticket_expired: "The sign-in took too long. Sign in again.",
  login_ticket_invalid: "The sign-in is no longer valid. Sign in again.",
  permission_denied: "You are not allowed to do this.",
  tenant_unavailable: "The active tenant is no longer available to you. Switch tenant in the top bar.",
  service_unavailable: "Gatehouse is not fully available right now. Try again in a moment.",
  service_timeout: "Gatehouse did not answer in time; the change may still be applied. Reload to check.",
  precondition_failed: "Someone else changed this record meanwhile.",
};

function wait(seconds) {
  if (!seconds) return "later";
  if (seconds < 90) return `in ${seconds} seconds`;
  return `in ${Math.ceil(seconds / 60)} minutes`;
}

/** The sentence for an error (an ApiError or any Error). */
export function describe(error) {
  if (!error) return "";
  if (error.code === "too_many_attempts") return `Too many failed sign-ins from this address. Try again ${wait(error.retryAfter)}.`;
  if (error.code === "rate_limited") return `Too many requests of this kind. Try again ${wait(error.retryAfter)}.`;
  if (error.status === 422 && error.code === "validation_error") return "Some fields need attention.";
  return WORDS[error.code] || error.message || "Something went wrong.";
}

export function Alert({ kind = "info", children }) {
  return html`<div class=${`alert alert-${kind}`} role=${kind === "error" ? "alert" : "status"}>${children}</div>`;
}

export function ErrorAlert({ error }) {
  if (!error) return null;
  return html`<${Alert} kind="error">${describe(error)}<//>`;
}

/** A list with nothing in it says so, and what to do next. */
export function EmptyState({ title, children }) {
  return html`<div class="empty"><p class="empty-title">${title}</p>${children ? html`<p>${children}</p>` : null}</div>`;
}

/** Progress of a long operation (a list loading, a request under way). */
export function Loading({ label = "Loading…" }) {
  return html`<div class="loading" role="status"><span class="spinner" aria-hidden="true"></span> ${label}</div>`;
}
