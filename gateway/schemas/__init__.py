"""Request and response bodies shared across routes; unknown fields are refused (marshmallow's default).

Each area adds its own module here (users.py, sessions.py, mail.py, audit.py, ...).

A request field the service checks against a rule (a pattern, an enum, a length) carries the same
rule here, imported from the service's domain module, so that the spec tells clients the truth and
bad input is refused at the door with its field path; the service checks again for other callers.
"""
from __future__ import annotations

import re

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import ValidationError, validates_schema
from marshmallow.validate import Validator

from contracts import identity as identity_domain
from contracts import rbac as rbac_domain


class JsonBoolean(Boolean):
    """true or false only: marshmallow's Boolean also takes 1, 0, "yes", "on" ... (every boolean
    field of the API is this one; none is read from a query string)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class FullMatch(Regexp):
    """A pattern the whole value must match: Regexp's re.match lets "name\n" through a `...$`.
    apispec shows it as the field's `pattern`."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Rule(Validator):
    """A service's own rule: problem_of(value) answers what is wrong, or None."""

    def __init__(self, problem_of):
        self.problem_of = problem_of

    def __call__(self, value):
        if (problem := self.problem_of(value)) is not None:
            raise ValidationError(problem)
        return value


class WholeBodyRule(Schema):
    """A body a service checks as a whole (fields that depend on each other): `problems_of(body)`
    is the service's rule, {field: what is wrong}; it runs once every field is valid by itself."""

    problems_of = staticmethod(lambda body: {})

    @validates_schema
    def _obeys_the_service(self, data, **kwargs):
        if problems := self.problems_of(data):
            raise ValidationError({field: [problem] for field, problem in problems.items()})


def pattern_of(regex: re.Pattern) -> dict:
    """The spec's `pattern` of a field whose Rule applies `regex` (and more)."""
    return {"pattern": regex.pattern}


def profile_rule(field: str) -> Rule:
    """identity's rule of one profile field: username, email, first_name, last_name or company."""
    return Rule(lambda value: identity_domain.profile_problems({field: value}).get(field))


def role_reference(**kwargs) -> String:
    """The name of a built-in or custom role (one that does not exist is rbac's 422 unknown_role)."""
    return String(validate=FullMatch(rbac_domain.ROLE_NAME), **kwargs)


def settable_password(**kwargs) -> String:
    """A password being set: the admin's policy (identity's check) never allows fewer than 8 characters."""
    floor, ceiling = identity_domain.PASSWORD_LENGTH_FLOOR, identity_domain.PASSWORD_LENGTH_CEILING
    return String(validate=Length(floor, ceiling, error="must be {min} to {max} characters (the password "
                                                        "policy may ask for more)"), load_only=True, **kwargs)


USERNAME = {**pattern_of(identity_domain.USERNAME_PATTERN), "description": "a Unix login and LDAP uid; not a "
            "reserved system name"}
EMAIL = {"format": "email"}


class PageQuery(Schema):
    """The one paging style: `limit` and the opaque `cursor` a previous page answered as `next_cursor`."""

    limit = Integer(load_default=50, validate=Range(1, 200))
    cursor = String(validate=Length(1, 200), metadata={"description": "`next_cursor` of the previous page"})


def page_of(item_schema, name: str):
    """The conventional list answer {"items", "next_cursor", "total"} of `item_schema`."""
    return Schema.from_dict({"items": List(Nested(item_schema)), "next_cursor": String(allow_none=True),
                             "total": Integer()}, name=name)


class RegisterIn(Schema):
    username = String(required=True, validate=[Length(1, 32), profile_rule("username")], metadata=USERNAME)
    first_name = String(required=True, validate=[Length(1, 64), profile_rule("first_name")])
    last_name = String(required=True, validate=[Length(1, 64), profile_rule("last_name")])
    email = String(validate=[Length(3, 254), profile_rule("email")],
                   metadata={**EMAIL, "description": "required unless invitation_token is given"})
    password = settable_password(required=True)
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
    is_first_admin = JsonBoolean()
    must_change_password = JsonBoolean()
    totp_enrolled = JsonBoolean()
    totp_required = JsonBoolean(metadata={"description": "an administrator requires 2FA of this user"})
    totp_required_by_policy = JsonBoolean(metadata={"description": "the policy \"Require 2FA for super_admin\" "
                                                                   "applies to this user"})
    totp_enrollment_required = JsonBoolean(metadata={"description": "the user must enroll TOTP before anything else"})
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
