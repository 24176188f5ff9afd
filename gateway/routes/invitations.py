"""/api/v1/invitations: invite people by email; the link's page reads an invitation by token."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, requires
from gateway.schemas.mail import (
    InvitationOut, InvitationPageOut, InvitationPreviewOut, InvitationQuery, InvitationsIn, InvitationsOut,
    InvitationTokenIn,
)

bp = APIBlueprint("invitations", __name__, url_prefix="/api/v1/invitations", tag="Invitations")


@bp.get("/<uuid_id:invitation_id>")
@requires("admin.users")
@bp.output(InvitationOut)
@bp.doc(summary="One invitation", description="Needs `admin.users`.",
        responses={401: "Not signed in", 403: "Missing permission admin.users", 404: "No such invitation"})
def get_invitation(invitation_id):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.get_invitation(invitation_id, current_principal().tenant_id)


@bp.post("")
@requires("admin.users")
@bp.input(InvitationsIn, arg_name="body")
@bp.output(InvitationsOut, status_code=201, description="One pending invitation per address; the mails follow")
@bp.doc(summary="Invite people by email",
        description="Needs `admin.users`, and the right to grant `role`. All or nothing: one bad or taken "
                    "address refuses the lot, each named in `details`. Needs SMTP configured.",
        responses={401: "Not signed in", 403: "Missing permission, or the role is above yours",
                   409: "`email_taken` (details per address) or `smtp_not_configured`",
                   422: "`invalid_emails` (details per address) or an unknown role",
                   429: "`rate_limited`: the batch would pass your `GATEHOUSE_INVITATIONS_PER_ADMIN` "
                        "invitation mails of the window (see Retry-After)"})
def create_invitations(body):
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        rpc.rbac.check_assignable(principal.user_id, body["role"], principal.tenant_id, {})
        items = rpc.identity.create_invitations(actor().__dict__, body["emails"], body["role"], principal.tenant_id)
    location = f"/api/v1/invitations/{items[0]['id']}" if len(items) == 1 else "/api/v1/invitations"
    return {"items": items}, 201, {"Location": location}


@bp.get("")
@requires("admin.users")
@bp.input(InvitationQuery, location="query", arg_name="query")
@bp.output(InvitationPageOut)
@bp.doc(summary="Invitations, newest first", description="Needs `admin.users`. Filter `status`; page with `cursor`.",
        responses={401: "Not signed in", 403: "Missing permission admin.users"})
def list_invitations(query):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.list_invitations(query.get("status"), query["limit"], query.get("cursor"),
                                            current_principal().tenant_id)


@bp.post("/<uuid_id:invitation_id>/resend")
@requires("admin.users")
@bp.output(InvitationOut)
@bp.doc(summary="Send a pending invitation again",
        description="Needs `admin.users`. A new expiry and a new mail; the previous link stops working.",
        responses={401: "Not signed in", 403: "Missing permission admin.users", 404: "No such invitation",
                   409: "`invitation_not_pending` or `smtp_not_configured`",
                   429: "`rate_limited`: too many invitation mails by you, or resends to this address "
                        "(`GATEHOUSE_INVITATION_RESENDS_PER_ADDRESS`); see Retry-After"})
def resend_invitation(invitation_id):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.resend_invitation(actor().__dict__, invitation_id, current_principal().tenant_id)


@bp.delete("/<uuid_id:invitation_id>")
@requires("admin.users")
@bp.output({}, status_code=204)
@bp.doc(summary="Revoke a pending invitation",
        description="Needs `admin.users`. Its link stops working and the invited placeholder user is removed.",
        responses={401: "Not signed in", 403: "Missing permission admin.users", 404: "No such invitation",
                   409: "`invitation_not_pending`"})
def revoke_invitation(invitation_id):
    with current_app.extensions["rpc"].client() as rpc:
        rpc.identity.revoke_invitation(actor().__dict__, invitation_id, current_principal().tenant_id)
    return "", 204


@bp.post("/preview")
@bp.input(InvitationTokenIn, arg_name="body")
@bp.output(InvitationPreviewOut)
@bp.doc(summary="Read an invitation link (anonymous)",
        description="The registration page shows the invited email, pre-filled and locked. The token travels in "
                    "the body, never in a URL (the link keeps it in its fragment). Register with "
                    "`POST /api/v1/auth/register` and `invitation_token`.",
        responses={404: "`invitation_not_found`", 410: "`invitation_expired` or `invitation_used`"})
def invitation_preview(body):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.invitation_for_token(body["token"])
