"""/api/v1/settings: SMTP (for invitations and password resets) and its test mail, the password policy
and self-registration.

Platform settings are the provider's: super admins only (identity checks it again itself). Tenants have
no mail sender or password policy of their own; one SMTP server and one policy serve every tenant
(docs/security.md)."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, requires
from kernel import SUPER_ADMIN_ONLY
from gateway.schemas.mail import (PasswordPolicyIn, PasswordPolicyOut, RegistrationSettingsIn, RegistrationSettingsOut,
                                  SmtpSettingsIn, SmtpSettingsOut, SmtpTestIn, SmtpTestOut)

bp = APIBlueprint("settings", __name__, url_prefix="/api/v1/settings", tag="Settings")

GUARDED = {401: "Not signed in", 403: "Not a super admin (platform settings are the provider's)"}


@bp.get("/smtp")
@requires(SUPER_ADMIN_ONLY)
@bp.output(SmtpSettingsOut)
@bp.doc(summary="The SMTP settings", description="Super admins only (platform-wide: one for every tenant). "
        "The password is never shown.", responses=GUARDED)
def get_smtp():
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.get_smtp_settings()


@bp.put("/smtp")
@requires(SUPER_ADMIN_ONLY)
@bp.input(SmtpSettingsIn, arg_name="body")
@bp.output(SmtpSettingsOut)
@bp.doc(summary="Configure SMTP",
        description="Super admins only (platform-wide: one for every tenant). Leave `password` out to keep "
                    "the stored one. The password is "
                    "stored encrypted. Mails waiting for a retry are tried again at once.",
        responses={**GUARDED, 422: "Invalid fields"})
def put_smtp(body):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.put_smtp_settings(actor().__dict__, body)


@bp.delete("/smtp")
@requires(SUPER_ADMIN_ONLY)
@bp.output({}, status_code=204)
@bp.doc(summary="Unconfigure SMTP", description="Super admins only (platform-wide: one for every tenant). "
        "Invitations are refused until SMTP "
        "is configured again.", responses=GUARDED)
def delete_smtp():
    with current_app.extensions["rpc"].client() as rpc:
        rpc.identity.delete_smtp_settings(actor().__dict__)
    return "", 204


@bp.post("/smtp/test")
@requires(SUPER_ADMIN_ONLY)
@bp.input(SmtpTestIn, arg_name="body")
@bp.output(SmtpTestOut)
@bp.doc(summary="Send a test mail",
        description="Super admins only. Sends a test message to `to` with the stored SMTP settings, at once "
                    "(not through the mail queue), and answers what happened: `sent` true, or false with "
                    "`error`, the SMTP error in words (never the password). Audited as `smtp_test_sent`. "
                    "Counts against `GATEHOUSE_SMTP_TESTS_PER_ADMIN`.",
        responses={**GUARDED, 409: "`smtp_not_configured`", 422: "Invalid fields (`to` not an address)",
                   429: "`rate_limited`: more test mails than `GATEHOUSE_SMTP_TESTS_PER_ADMIN` in the window"})
def test_smtp(body):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.send_test_mail(actor().__dict__, body["to"])


@bp.get("/registration")
@requires(SUPER_ADMIN_ONLY)
@bp.output(RegistrationSettingsOut)
@bp.doc(summary="The self-registration settings", description="Super admins only (platform-wide). By default "
        "self-registration is on for any email domain.", responses=GUARDED)
def get_registration():
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.get_registration_settings()


@bp.put("/registration")
@requires(SUPER_ADMIN_ONLY)
@bp.input(RegistrationSettingsIn, arg_name="body")
@bp.output(RegistrationSettingsOut)
@bp.doc(summary="Change the self-registration settings",
        description="Super admins only (platform-wide). `self_registration` false: `POST /api/v1/auth/register` "
                    "answers `403 registration_closed` (invitations still work). `allowed_email_domains`: a "
                    "self-registration with another domain is `422` (`details.email`); empty: any domain. "
                    "Audited (`settings_changed`, the fields that changed).",
        responses={**GUARDED, 422: "Invalid fields (a domain that is not one)"})
def put_registration(body):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.put_registration_settings(actor().__dict__, body)


@bp.get("/password-policy")
@requires(SUPER_ADMIN_ONLY)
@bp.output(PasswordPolicyOut)
@bp.doc(summary="The password policy", description="Super admins only (platform-wide: one for every tenant).",
        responses=GUARDED)
def get_password_policy():
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.get_password_policy()


@bp.put("/password-policy")
@requires(SUPER_ADMIN_ONLY)
@bp.input(PasswordPolicyIn, arg_name="body")
@bp.output(PasswordPolicyOut)
@bp.doc(summary="Change the password policy",
        description="Super admins only (platform-wide: one for every tenant). Missing fields take the "
                    "defaults (12, 128, true). Applies to "
                    "passwords set from now on.",
        responses={**GUARDED, 422: "Invalid fields (max_length below min_length, out of range)"})
def put_password_policy(body):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.put_password_policy(actor().__dict__, body)
