"""Request and response bodies shared across routes; unknown fields are refused (marshmallow's default).

Each area adds its own module here (users.py, sessions.py, mail.py, audit.py, ...)."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range


class PageQuery(Schema):
    """The one paging style: `limit` and the opaque `cursor` a previous page answered as `next_cursor`."""

    limit = Integer(load_default=50, validate=Range(1, 200))
    cursor = String(validate=Length(1, 200), metadata={"description": "`next_cursor` of the previous page"})


def page_of(item_schema, name: str):
    """The conventional list answer {"items", "next_cursor", "total"} of `item_schema`."""
    return Schema.from_dict({"items": List(Nested(item_schema)), "next_cursor": String(allow_none=True),
                             "total": Integer()}, name=name)


class RegisterIn(Schema):
    username = String(required=True, validate=Length(1, 32))
    first_name = String(required=True, validate=Length(1, 64))
    last_name = String(required=True, validate=Length(1, 64))
    email = String(validate=Length(3, 254), metadata={"description": "required unless invitation_token is given"})
    password = String(required=True, validate=Length(1, 1024), load_only=True)
    invitation_token = String(validate=Length(1, 200), load_only=True,
                              metadata={"description": "the token of an invitation link"})


class LoginIn(Schema):
    login = String(required=True, validate=Length(1, 254), metadata={"description": "username or email"})
    password = String(required=True, validate=Length(1, 1024), load_only=True)


class RegisteredOut(Schema):
    """What an anonymous registrant sees of the account just made."""

    id = String()
    username = String()
    email = String()
    first_name = String()
    last_name = String()
    status = String(validate=OneOf(["pending", "invited", "active", "suspended"]))
    created_at = String(metadata={"format": "date-time"})


class UserOut(RegisteredOut):
    """A user as the user themself and administrators see them."""

    username = String(allow_none=True, metadata={"description": "null for an invited user not yet registered"})
    full_name = String()
    company = String()
    uid_number = Integer(allow_none=True)
    is_first_admin = Boolean()
    must_change_password = Boolean()
    totp_enrolled = Boolean()
    totp_required = Boolean(metadata={"description": "an administrator requires 2FA of this user"})
    totp_required_by_policy = Boolean(metadata={"description": "the policy \"Require 2FA for super_admin\" "
                                                               "applies to this user"})
    totp_enrollment_required = Boolean(metadata={"description": "the user must enroll TOTP before anything else"})
    role = String(allow_none=True, metadata={"description": "the role in the caller's tenant (administrator views)"})
    version = Integer(metadata={"description": "bumped on every change; the ETag of If-Match updates"})
    updated_at = String(allow_none=True, metadata={"format": "date-time"})
    last_login_at = String(allow_none=True, metadata={"format": "date-time"})


class TokenOut(Schema):
    access_token = String()
    token_type = String()
    expires_in = Integer()
    user = Nested(UserOut)


class HealthOut(Schema):
    status = String()
    checks = Dict()
