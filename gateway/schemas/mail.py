"""Bodies of invitations, password resets and the settings mail depends on."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Field, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError

from contracts import identity as mail
from contracts.identity import MIN_LENGTH_CEILING, PASSWORD_LENGTH_CEILING, PASSWORD_LENGTH_FLOOR
from gateway.schemas import EMAIL, JsonBoolean, PageQuery, WholeBodyRule, role_reference, settable_password

INVITATION_STATUSES = ["pending", "accepted", "revoked", "expired"]


class EmailList(Field):
    """A comma-separated string of addresses or a list of them; the service checks each address."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) <= 20000:
            return value
        if isinstance(value, list) and len(value) <= 200 and all(isinstance(item, str) and len(item) <= 254
                                                                  for item in value):
            return value
        raise ValidationError("must be a comma-separated string or a list of addresses")


class InvitationsIn(Schema):
    emails = EmailList(required=True, metadata={
        "description": 'Addresses to invite: "a@x.com, b@y.com" or ["a@x.com", "b@y.com"]',
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
    role = role_reference(required=True, metadata={"description": "role granted on acceptance"})


class InvitationOut(Schema):
    id = String()
    email = String()
    role = String()
    tenant_id = String()
    status = String(validate=OneOf(INVITATION_STATUSES))
    user_id = String(allow_none=True, metadata={"description": "the placeholder user (status invited)"})
    invited_by = String(allow_none=True)
    created_at = String(metadata={"format": "date-time"})
    expires_at = String(metadata={"format": "date-time"})
    sent_at = String(allow_none=True, metadata={"format": "date-time", "description": "when SMTP took the mail"})
    accepted_at = String(allow_none=True, metadata={"format": "date-time"})


class InvitationItemOut(InvitationOut):
    """An invitation inside a list. Its own class: apiflask registers the spec's schemas by
    shortest path first, and a class nested before its direct use would be named twice."""


class InvitationsOut(Schema):
    items = List(Nested(InvitationItemOut))


class InvitationPageOut(Schema):
    items = List(Nested(InvitationItemOut))
    next_cursor = String(allow_none=True)
    total = Integer()


class InvitationQuery(PageQuery):
    status = String(validate=OneOf(INVITATION_STATUSES))


class InvitationTokenIn(Schema):
    token = String(required=True, validate=Length(1, 200), load_only=True)


class InvitationPreviewOut(Schema):
    """What the registration page shows of an invitation link (the email, pre-filled and locked)."""

    email = String()
    expires_at = String(metadata={"format": "date-time"})
    role = String()


class PasswordResetRequestIn(Schema):
    email = String(required=True, validate=Length(1, 254))


class PasswordResetConfirmIn(Schema):
    token = String(required=True, validate=Length(1, 200), load_only=True)
    password = settable_password(required=True)


class AcceptedOut(Schema):
    message = String()


class AdminPasswordResetIn(Schema):
    method = String(required=True, validate=OneOf(["email", "random"]), metadata={
        "description": "email: mail the user a reset link (202); random: set a generated password, "
                       "shown once, to be changed at the next sign-in (200)"})


class GeneratedPasswordOut(Schema):
    password = String(metadata={"description": "shown once; the user must change it at the next sign-in"})


class SmtpSettingsIn(WholeBodyRule):
    problems_of = staticmethod(mail.smtp_problems)

    host = String(required=True, validate=Length(1, 253), metadata={"description": "a host name or IP address"})
    port = Integer(required=True, validate=Range(1, 65535), strict=True)
    tls_mode = String(required=True, validate=OneOf(mail.TLS_MODES))
    username = String(allow_none=True, validate=Length(0, 254))
    password = String(allow_none=True, validate=Length(0, 1024), load_only=True, metadata={
        "description": "write-only; leave out to keep the stored one, empty string to remove it"})
    from_address = String(required=True, validate=Length(3, 254), metadata=EMAIL)


class SmtpSettingsOut(Schema):
    configured = JsonBoolean()
    host = String(allow_none=True)
    port = Integer(allow_none=True)
    tls_mode = String(allow_none=True)
    username = String(allow_none=True)
    from_address = String(allow_none=True)
    password_set = JsonBoolean(metadata={"description": "a password is stored (it is never shown)"})


class PasswordPolicyIn(WholeBodyRule):
    """max_length must be at least min_length."""

    problems_of = staticmethod(mail.password_policy_problems)

    min_length = Integer(load_default=12, validate=Range(PASSWORD_LENGTH_FLOOR, MIN_LENGTH_CEILING), strict=True)
    max_length = Integer(load_default=128, validate=Range(PASSWORD_LENGTH_FLOOR, PASSWORD_LENGTH_CEILING), strict=True)
    refuse_common = JsonBoolean(load_default=True)


class PasswordPolicyOut(Schema):
    min_length = Integer()
    max_length = Integer()
    refuse_common = JsonBoolean()


class SmtpTestIn(Schema):
    to = String(required=True, validate=Length(3, 254), metadata={**EMAIL, "description": "where the test mail goes"})


class SmtpTestOut(Schema):
    sent = JsonBoolean(metadata={"description": "the SMTP server took the mail"})
    to = String(metadata={"description": "the address, as normalized"})
    error = String(allow_none=True, metadata={
        "description": "why not, when not sent: the SMTP error in words (never a secret)"})


class RegistrationSettingsIn(WholeBodyRule):
    problems_of = staticmethod(mail.registration_settings_problems)

    self_registration = JsonBoolean(required=True, metadata={
        "description": "anyone may register (accounts then wait for an administrator's approval); false: "
                       "only invitations create accounts"})
    allowed_email_domains = List(String(validate=Length(1, 253)), load_default=list, metadata={
        "description": f"self-registration only with an address of one of these domains (exactly, not their "
                       f"subdomains; at most {mail.MAX_ALLOWED_EMAIL_DOMAINS}); empty: any domain"})


class RegistrationSettingsOut(Schema):
    self_registration = JsonBoolean()
    allowed_email_domains = List(String(), metadata={"description": "in ASCII (IDNA) form; empty: any domain"})
