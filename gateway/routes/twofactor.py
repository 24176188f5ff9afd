"""Two-factor authentication (TOTP): my 2FA, super admins' row actions on users, the global policy.

The second sign-in step lives with the other sign-in routes (routes/auth.py).
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, requires, session_cache
from gateway.isolation import changeable_user
from gateway.schemas.twofactor import (
    ConfirmEnrollmentIn, EnrollmentOut, ProofIn, RecoveryCodesOut, RequiredUserOut, TwoFactorPolicy,
    TwoFactorStatusOut,
)
from kernel import SUPER_ADMIN_ONLY

bp = APIBlueprint("twofactor", __name__, url_prefix="/api/v1", tag="Two-factor authentication")

# The enrollment routes answer a user who owes an enrollment (and a password change: enroll first).
ENROLLING = {"allow_2fa_enrollment": True, "allow_password_change": True}
PROOF = {401: "Not signed in; or the password (`invalid_credentials`) or code (`invalid_code`, `code_reused`) is wrong",
         403: "`second_factor_locked` (a code was given)",
         422: "`proof_required`: neither password nor code (a first enrollment needs the password)"}
SUPER_ADMINS = {401: "Not signed in", 403: "Not a super admin", 404: "No such user"}


def _rpc():
    return current_app.extensions["rpc"].client()


# --- my 2FA ---------------------------------------------------------------------------

@bp.get("/me/2fa")
@requires(**ENROLLING)
@bp.output(TwoFactorStatusOut)
@bp.doc(summary="My 2FA state", responses={401: "Not signed in"})
def my_status():
    with _rpc() as rpc:
        return rpc.identity.two_factor_status(current_principal().session_id)


@bp.post("/me/2fa/enrollment")
@requires(**ENROLLING)
@bp.input(ProofIn, arg_name="body")
@bp.output(EnrollmentOut)
@bp.doc(summary="Start enrolling TOTP (or replacing it)", description=(
    "Answers a new secret, its `otpauth://` URI and QR code (SVG and base64 PNG), shown once. Nothing "
    "changes until `POST /api/v1/me/2fa/enrollment/confirm` with a code of it (within 15 minutes). Needs "
    "the current `password` (a stolen session alone must not plant a factor); to replace an enrolled "
    "factor, the password or a current `code`. Allowed while an enrollment is owed."),
    responses=PROOF)
def start_enrollment(body):
    with _rpc() as rpc:
        return rpc.identity.start_two_factor_enrollment(actor().__dict__, current_principal().session_id, **body)


@bp.post("/me/2fa/enrollment/confirm")
@requires(**ENROLLING)
@bp.input(ConfirmEnrollmentIn, arg_name="body")
@bp.output(RecoveryCodesOut)
@bp.doc(summary="Confirm the enrollment: 2FA on, 10 recovery codes", description=(
    "A current code of the secret just started turns 2FA on (or replaces the old factor) and answers 10 "
    "recovery codes, shown this once; earlier recovery codes stop working. An owed enrollment is then done."),
    responses={401: "Not signed in", 409: "`2fa_enrollment_not_started` (none, or older than 15 minutes)",
               422: "`invalid_code`"})
def confirm_enrollment(body):
    principal = current_principal()
    with _rpc() as rpc:
        result = rpc.identity.confirm_two_factor_enrollment(actor().__dict__, principal.session_id, body["code"])
    session_cache().forget_user(principal.user_id)  # this process at once; the others by the event
    return result


@bp.delete("/me/2fa")
@requires()
@bp.input(ProofIn, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(summary="Turn my 2FA off", description=(
    "Removes my TOTP and recovery codes. Needs the current `password` or a current `code`. Refused while "
    "an administrator (`2fa_required`) or the policy (`2fa_required_by_policy`) requires 2FA of me."),
    responses={**PROOF, 409: "`2fa_not_enrolled`, `2fa_required`, `2fa_required_by_policy`"})
def disable_mine(body):
    principal = current_principal()
    with _rpc() as rpc:
        rpc.identity.disable_own_two_factor(actor().__dict__, principal.session_id, **body)
    session_cache().forget_user(principal.user_id)
    return "", 204


@bp.post("/me/2fa/recovery-codes")
@requires()
@bp.input(ProofIn, arg_name="body")
@bp.output(RecoveryCodesOut)
@bp.doc(summary="New recovery codes", description=(
    "10 new single-use codes, shown this once; the earlier ones stop working. Needs the current `password` "
    "or a current `code`."), responses={**PROOF, 409: "`2fa_not_enrolled`"})
def regenerate_recovery_codes(body):
    with _rpc() as rpc:
        return rpc.identity.regenerate_recovery_codes(actor().__dict__, current_principal().session_id, **body)


# --- super admins' row actions on the user list --------------------------------------------

@bp.post("/users/<string:user_id>/2fa/requirement")
@requires(SUPER_ADMIN_ONLY)
@bp.output(RequiredUserOut)
@bp.doc(summary="Require 2FA of a user", description=(
    "Super admins only. The user can do nothing but enroll TOTP from their next request on (and at every "
    "sign-in until enrolled); after enrolling they cannot turn 2FA off while the requirement stands. "
    "Answers the user (`totp_required`, `totp_enrollment_required`)."),
    responses={**SUPER_ADMINS, 409: "`2fa_already_enrolled` or `2fa_requirement_active`"})
def require(user_id):
    with _rpc() as rpc:
        changeable_user(rpc, user_id)
        user = rpc.identity.require_two_factor(actor().__dict__, user_id, current_principal().tenant_id)
    session_cache().forget_user(user_id)
    return user


@bp.delete("/users/<string:user_id>/2fa/requirement")
@requires(SUPER_ADMIN_ONLY)
@bp.output({}, status_code=204)
@bp.doc(summary="Cancel a user's 2FA requirement", description="Super admins only.",
        responses={**SUPER_ADMINS, 409: "`2fa_requirement_not_active`"})
def cancel_requirement(user_id):
    with _rpc() as rpc:
        changeable_user(rpc, user_id)
        rpc.identity.cancel_two_factor_requirement(actor().__dict__, user_id, current_principal().tenant_id)
    session_cache().forget_user(user_id)
    return "", 204


@bp.delete("/users/<string:user_id>/2fa")
@requires(SUPER_ADMIN_ONLY)
@bp.output({}, status_code=204)
@bp.doc(summary="Disable a user's 2FA", description=(
    "Super admins only. Removes the user's TOTP and every recovery code (a user who lost both). Refused on "
    "your own account, and on a super admin while the policy \"Require 2FA for super_admin\" is on."),
    responses={**SUPER_ADMINS, 409: "`2fa_not_enrolled`, `own_account` or `2fa_required_by_policy`"})
def disable(user_id):
    with _rpc() as rpc:
        changeable_user(rpc, user_id)
        rpc.identity.admin_disable_two_factor(actor().__dict__, user_id, current_principal().tenant_id)
    session_cache().forget_user(user_id)
    return "", 204


# --- the global policy ----------------------------------------------------------------------

@bp.get("/settings/2fa-policy")
@requires(SUPER_ADMIN_ONLY)
@bp.output(TwoFactorPolicy)
@bp.doc(summary="The 2FA policy", description="Super admins only.",
        responses={401: "Not signed in", 403: "Not a super admin"})
def get_policy():
    with _rpc() as rpc:
        return rpc.identity.get_two_factor_policy()


@bp.put("/settings/2fa-policy")
@requires(SUPER_ADMIN_ONLY)
@bp.input(TwoFactorPolicy, arg_name="body")
@bp.output(TwoFactorPolicy)
@bp.doc(summary="Set the 2FA policy", description=(
    "Super admins only. `require_for_super_admin`: super admins without TOTP can do nothing but enroll, "
    "from their next request on. Enroll yourself first, or you lock yourself into enrollment."),
    responses={401: "Not signed in", 403: "Not a super admin", 422: "Invalid fields"})
def put_policy(body):
    with _rpc() as rpc:
        result = rpc.identity.put_two_factor_policy(actor().__dict__, body["require_for_super_admin"])
    session_cache().forget_all()  # what any super admin owes may have changed; the others by the event
    return result
