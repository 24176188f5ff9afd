"""Bodies of two-factor authentication: the second sign-in step, my 2FA, admin row actions, the policy."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, List, String
from apiflask.validators import Length
from marshmallow import ValidationError, validates_schema

from gateway.schemas import JsonBoolean, UserOut
from gateway.schemas.sessions import SessionTokenOut

CODE = {"description": "the 6-digit code the authenticator app shows now"}


class LoginOut(SessionTokenOut):
    """Either the tokens of a session, or (account with 2FA) a second-factor challenge and no tokens."""

    second_factor_required = JsonBoolean(metadata={
            "description": "true: the password was right; send the login_ticket and a code to "
                           "POST /api/v1/auth/login/second-factor (no tokens yet)"})
    login_ticket = String(metadata={"description": "single use, valid for expires_in seconds (at most 300)"})
    methods = List(String(), metadata={"description": "second factors accepted: totp, recovery_code"})


class SecondFactorIn(Schema):
    login_ticket = String(required=True, validate=Length(1, 256), load_only=True)
    code = String(validate=Length(1, 16), load_only=True, metadata=CODE)
    recovery_code = String(validate=Length(1, 32), load_only=True,
                           metadata={"description": "one of the recovery codes, e.g. k7m2p-x9q4r (works once)"})

    @validates_schema
    def one_factor(self, data, **kwargs):
        if ("code" in data) == ("recovery_code" in data):
            raise ValidationError("give either code or recovery_code", field_name="code")


class ProofIn(Schema):
    """What a 2FA change needs besides the session: the current password, or (when enrolled) a current code."""

    password = String(validate=Length(1, 1024), load_only=True,
                      metadata={"description": "the current password (required for a first enrollment)"})
    code = String(validate=Length(1, 16), load_only=True, metadata=CODE)


class ConfirmEnrollmentIn(Schema):
    code = String(required=True, validate=Length(1, 16), load_only=True,
                  metadata={"description": "a current code of the secret just started"})


class TwoFactorStatusOut(Schema):
    enrolled = JsonBoolean()
    enrolled_at = String(allow_none=True, metadata={"format": "date-time"})
    required = JsonBoolean(metadata={"description": "an administrator requires 2FA of me"})
    required_by_policy = JsonBoolean(metadata={"description": "the policy \"Require 2FA for super_admin\" applies to me"})
    enrollment_required = JsonBoolean(metadata={"description": "I must enroll before anything else"})
    enrollment_pending = JsonBoolean(metadata={"description": "an enrollment was started and awaits its confirmation"})
    recovery_codes_left = Integer()
    second_factor_locked = JsonBoolean(metadata={"description": "too many wrong codes: an administrator must unlock"})


class EnrollmentOut(Schema):
    secret = String(metadata={"description": "base32 TOTP secret, shown this once"})
    otpauth_uri = String(metadata={"description": "otpauth://totp/Gatehouse:<username>?secret=...&issuer=Gatehouse"})
    qr_svg = String(metadata={"description": "the URI as a QR code, an SVG document"})
    qr_png = String(metadata={"description": "the URI as a QR code, a base64 PNG image"})
    issuer = String()
    account = String()
    algorithm = String()
    digits = Integer()
    period = Integer()
    expires_at = String(metadata={"format": "date-time", "description": "confirm before this"})


class RecoveryCodesOut(Schema):
    recovery_codes = List(String(), metadata={"description": "10 single-use codes, shown this once"})


class TwoFactorPolicy(Schema):
    require_for_super_admin = JsonBoolean(required=True, metadata={
            "description": "super admins without TOTP must enroll before anything else (at their next request)"})


class RequiredUserOut(UserOut):
    """The user a requirement was just placed on (its own class: apispec warns when a response
    schema is also nested)."""
