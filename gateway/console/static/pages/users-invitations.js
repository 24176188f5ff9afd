// Users > Invitations: newest first, filter by status, resend or revoke a pending one.
import { api, html, useEffect, useState, when, Alert, ErrorAlert, EmptyState, Loading } from "./users-kit.js";
import { ConfirmDialog } from "../components/dialog.js";
import { InviteDialog, SmtpHelp } from "./users-dialogs.js";
import { UsersTabs } from "./users.js";

const STATUSES = [["pending", "Pending"], ["", "All"], ["accepted", "Accepted"], ["expired", "Expired"], ["revoked", "Revoked"]];
const PAGE_SIZE = 25;

export function InvitationsPage() {
  const [status, setStatus] = useState("pending");
  const [cursors, setCursors] = useState([null]);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const [inviting, setInviting] = useState(false);
  const [revoking, setRevoking] = useState(null);
  const [reloads, setReloads] = useState(0);
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    let live = true;
    api.get("/invitations", { status, limit: PAGE_SIZE, cursor }).then(
      (answer) => { if (live) setPage(answer.data); },
      (problem) => { if (live) setError(problem); },
    );
    return () => { live = false; };
  }, [status, cursor, reloads]);

  const act = async (words, call) => {
    setNotice("");
    setError(null);
    try {
      await call();
      setNotice(words);
      setReloads((count) => count + 1);
    } catch (problem) {
      setError(problem);
    }
  };
  const items = (page && page.items) || [];
  return html`<section class="page invitations-page">
    <${UsersTabs} current="/users/invitations" />
    <div class="toolbar">
      <div class="chips" role="group" aria-label="Invitation status">
        ${STATUSES.map(([value, label]) => html`<button type="button" class=${`chip${status === value ? " active" : ""}`}
            aria-pressed=${status === value ? "true" : "false"}
            onClick=${() => { setStatus(value); setCursors([null]); }}>${label}</button>`)}
      </div>
      <div class="toolbar-actions"><button type="button" class="button primary" onClick=${() => setInviting(true)}>Invite users</button></div>
    </div>
    ${notice && html`<${Alert} kind="success">${notice}<//>`}
    ${error && (error.code === "smtp_not_configured" ? html`<${SmtpHelp} />` : html`<${ErrorAlert} error=${error} />`)}
    <div class="table-wrap"><table class="table" aria-label="Invitations">
      <thead><tr><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col">Sent</th>
        <th scope="col">Expires</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${items.map((item) => html`<tr key=${item.id} data-invitation=${item.email}>
        <td>${item.email}</td><td>${item.role}</td><td><span class=${`badge invitation-${item.status}`}>${item.status}</span></td>
        <td>${item.sent_at ? when(item.sent_at) : item.status === "pending" ? "waiting for the mail server" : "—"}</td>
        <td>${item.status === "accepted" ? `accepted ${when(item.accepted_at)}` : when(item.expires_at)}</td>
        <td class="row-actions">${item.status === "pending" && html`
          <button type="button" class="button" onClick=${() => act(`A new link is on its way to ${item.email}; the previous one no longer works.`,
              () => api.post(`/api/v1/invitations/${encodeURIComponent(item.id)}/resend`))}>Resend</button>
          <button type="button" class="button danger" onClick=${() => setRevoking(item)}>Revoke</button>`}
          ${(item.status === "expired" || item.status === "revoked") && html`<small>Invite again to send a new link.</small>`}
        </td>
      </tr>`)}</tbody>
    </table></div>
    ${!page && !error ? html`<${Loading} label="Loading invitations…" />` : null}
    ${page && items.length === 0 && html`<${EmptyState}
        title=${status === "pending" ? "No invitation is waiting for an answer." : "No invitations here."}>
      <button type="button" class="link" onClick=${() => setInviting(true)}>Invite users</button> by email: they get a
      link to register, and are active with the role you choose.<//>`}
    <div class="pager">
      <span>${page ? `${page.total} invitation${page.total === 1 ? "" : "s"}` : "Loading…"}</span>
      <button type="button" class="button" disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous</button>
      <button type="button" class="button" disabled=${!(page && page.next_cursor)} onClick=${() => setCursors([...cursors, page.next_cursor])}>Next</button>
    </div>
    ${revoking && html`<${ConfirmDialog} open title=${`Revoke the invitation of ${revoking.email}?`}
        confirmLabel="Revoke" busyLabel="Revoking…" danger onClose=${() => setRevoking(null)}
        onConfirm=${async () => {
          await api.del(`/invitations/${encodeURIComponent(revoking.id)}`);
          setNotice(`The invitation of ${revoking.email} is revoked; its link no longer works.`);
          setReloads((count) => count + 1);
        }}>
      <p>The link mailed to ${revoking.email} stops working and the invited account placeholder goes. You can invite
        the address again later.</p>
    <//>`}
    ${inviting && html`<${InviteDialog} onClose=${() => setInviting(false)}
        onDone=${(words) => { setInviting(false); setNotice(words); setReloads((count) => count + 1); }} />`}
  </section>`;
}
