"""Bodies of sign-in, token refresh, sessions and password change."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Length

from gateway.schemas import JsonBoolean, PageQuery, TokenOut, UserOut, profile_rule, settable_password


class MeOut(UserOut):
    """The signed-in user, with what the account still owes before it may use the API."""

    must_change_password = JsonBoolean()
    tenant_id = String(metadata={"description": "this session's active tenant"})


class SessionTokenOut(TokenOut):
    refresh_token = String(metadata={"description": "single use: each refresh answers a new one"})
    session_id = String()
    user = Nested(MeOut)
    enrollment_required = JsonBoolean(metadata={
            "description": "true: these tokens can do nothing but set up 2FA (POST /api/v1/me/2fa/enrollment); "
                           "every other route answers 403 2fa_enrollment_required"})


class RefreshIn(Schema):
    refresh_token = String(validate=Length(1, 256), load_only=True, metadata={
        "description": "required, unless the web console sends `X-Gatehouse-Client: console` and its cookie"})


class MyNamesIn(Schema):
    """What users change of their own profile (email, username and the rest: an administrator)."""

    first_name = String(validate=[Length(1, 64), profile_rule("first_name")])
    last_name = String(validate=[Length(1, 64), profile_rule("last_name")])


class PasswordChangeIn(Schema):
    current_password = String(required=True, validate=Length(1, 1024), load_only=True)
    new_password = settable_password(required=True)


class SessionOut(Schema):
    id = String()
    created_at = String(metadata={"format": "date-time"})
    last_used_at = String(allow_none=True, metadata={"format": "date-time",
                                                      "description": "sign-in or last token refresh"})
    expires_at = String(allow_none=True, metadata={"format": "date-time"})
    ip = String(allow_none=True)
    user_agent = String()
    current = JsonBoolean(metadata={"description": "the session of the token making this request"})


class SessionPageOut(Schema):
    items = List(Nested(SessionOut))
    next_cursor = String(allow_none=True)
    total = Integer()


class SessionQuery(PageQuery):
    pass
