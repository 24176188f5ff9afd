"""Password resets: self-service by mailed link, and by an administrator."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app, jsonify

from gateway.auth import actor, requires, session_cache
from gateway.isolation import changeable_user
from gateway.schemas.mail import (
    AcceptedOut, AdminPasswordResetIn, GeneratedPasswordOut, PasswordResetConfirmIn, PasswordResetRequestIn,
)

bp = APIBlueprint("passwords", __name__, url_prefix="/api/v1", tag="Passwords")

REQUEST_ACCEPTED = "If an active account has this address, a reset link is on its way."


@bp.post("/auth/password-reset")
@bp.input(PasswordResetRequestIn, arg_name="body")
@bp.output(AcceptedOut, status_code=202)
@bp.doc(summary="Ask for a password reset link",
        description="Always the same answer, whether or not the account exists. At most one mail per "
                    "account per minute and `GATEHOUSE_RESET_MAILS_PER_ACCOUNT` per window (beyond: no mail, "
                    "audited `rate_limited`, same answer); the link works once, for an hour.",
        responses={429: "`rate_limited`: more than `GATEHOUSE_RESET_REQUESTS_PER_IP` requests from this address "
                        "in the window (see Retry-After)"})
def request_reset(body):
    with current_app.extensions["rpc"].client() as rpc:
        rpc.identity.request_password_reset(actor().__dict__, body["email"])
    return {"message": REQUEST_ACCEPTED}, 202


@bp.post("/auth/password-reset/confirm")
@bp.input(PasswordResetConfirmIn, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(summary="Set a new password with a reset link's token",
        description="Ends every session of the account.",
        responses={404: "`reset_not_found`", 410: "`reset_used` or `reset_expired`",
                   422: "The password breaks the policy (details.password names the rule)"})
def confirm_reset(body):
    with current_app.extensions["rpc"].client() as rpc:
        rpc.identity.confirm_password_reset(actor().__dict__, body["token"], body["password"])
    return "", 204


@bp.post("/users/<string:user_id>/password-reset")
@requires("admin.users")
@bp.input(AdminPasswordResetIn, arg_name="body")
@bp.output(GeneratedPasswordOut, description="method random: the generated password, shown once")
@bp.doc(summary="Reset a user's password (admin)",
        description="Needs `admin.users`. `email`: mails a reset link, answers 202. `random`: sets a "
                    "generated password (answered once, 200) that must be changed at the next sign-in, "
                    "and ends the user's sessions. Administrators never choose a user's password.",
        responses={202: "Reset link queued", 401: "Not signed in", 403: "Missing admin.users, `cross_tenant_user` or `outside_authority`",
                   404: "No such user in the active tenant", 409: "`smtp_not_configured` or `user_invited`",
                   429: "`rate_limited` (method email): too many reset mails to this user "
                        "(`GATEHOUSE_ADMIN_RESETS_PER_USER`) or by you (`GATEHOUSE_ADMIN_RESETS_PER_ADMIN`); "
                        "see Retry-After"})
def admin_reset(user_id, body):
    with current_app.extensions["rpc"].client() as rpc:
        changeable_user(rpc, user_id)
        result = rpc.identity.admin_reset_password(actor().__dict__, user_id, body["method"])
    session_cache().forget_user(user_id)
    if result is None:
        return jsonify(message="A reset link is on its way to the user."), 202
    return result
