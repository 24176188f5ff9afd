// Shared pieces of the Connections and Tenants areas (pages/connections*.js, pages/tenants*.js):
// the frame's API client, forms and dialogs, the users area's select/textarea fields, and the
// words for a connection's TLS, sign-in and sync state. Everything goes through the public REST API.
export {
  api, html, useEffect, useState, useForm, Field, FormError, SubmitButton, Dialog, Alert, ErrorAlert, EmptyState,
  Loading, describe, Link, navigate, useSession, can, SelectField, TextareaField, when, RoleOptions, useRoles,
} from "./users-kit.js";
export { ConfirmDialog } from "../components/dialog.js";
import { areaStylesheet } from "../components/stylesheet.js";
import { html } from "./users-kit.js";

areaStylesheet("connections");

/** How the connection checks the server's certificate, in words. */
export function tlsWords(connection) {
  if (!connection.verify_tls) return "Not verified (lab only)";
  if (connection.fingerprint) return "Pinned fingerprint";
  if (connection.ca_pem) return "Own CA";
  return "System CAs";
}

/** Who the connection signs in as. */
export function authWords(connection) {
  const auth = connection.auth || {};
  if (auth.method === "token") return `API token ${auth.token_id}`;
  if (auth.method === "password") return `User ${auth.username}`;
  return "—";
}

/** A sync target of GET /sync/status in words: {kind, text} for a badge. */
export function syncWords(target) {
  if (!target) return { kind: "unknown", text: "Not synced yet" };
  if (target.running) {
    const progress = target.progress && target.progress.total
      ? ` (${target.progress.done} of ${target.progress.total})` : "";
    return { kind: "running", text: `Syncing${progress}` };
  }
  if (target.state === "failing") {
    const error = target.last_run && target.last_run.error;
    return { kind: "failing", text: `Failing${error && error.message ? `: ${error.message}` : ""}` };
  }
  if (target.last_run) return { kind: "ok", text: `In sync${target.pending ? `, ${target.pending} waiting` : ""}` };
  return { kind: "unknown", text: target.pending ? "Waiting for its first sync" : "Not synced yet" };
}

export function SyncBadge({ target }) {
  const words = syncWords(target);
  return html`<span class=${`badge sync-${words.kind}`}>${words.text}</span>`;
}

/** The answer of POST /connections/{id}/test in words. */
export function testWords(name, answer) {
  if (answer.ok) return `${name} works: Proxmox VE ${answer.release} (pve-manager ${answer.version}) accepted the credentials.`;
  const error = answer.error || {};
  return `${name} does not work: ${error.message || error.code || "unknown failure"}`;
}
