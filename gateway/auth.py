"""Access tokens and route guards.

The gateway mints short-lived signed JWTs after identity accepts a password; every
guarded request checks the signature locally, then asks identity whether the session
and user are still live, and rbac whether the user holds the route's permission.
Both answers go through the process's session cache (gateway/session_cache.py),
which events empty the moment a session, user or role changes.

An account can owe something before it may use the API (a password change, a 2FA
enrollment): such a user gets 403 with the requirement's code on every guarded route
except those that declare the matching allowance, e.g. `@requires(allow_password_change=True)`.
The check runs in the guard of every route, never by path. A new requirement is one
`Requirement` entry.

A session works in one tenant (identity chose it at sign-in; POST /api/v1/me/tenant switches
it). Every guarded route needs access to it: a membership there, or a super admin while the
tenant exists. Otherwise 403 `tenant_unavailable`, never a silent fall-back to another tenant;
routes with `allow_without_tenant=True` (who am I, my tenants, switching, sign-out) let the
user through to switch.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import jwt
from apiflask import APIBlueprint, HTTPTokenAuth
from flask import current_app, g, request

from kernel import DEFAULT_TENANT_ID, SUPER_ADMIN_ONLY
from kernel.envelope import Actor
from kernel.errors import Forbidden, Unauthorized

log = logging.getLogger("gatehouse.gateway")
ISSUER = "gatehouse"
auth = HTTPTokenAuth(scheme="Bearer", security_scheme_name="BearerAuth",
                     description="An access token from POST /api/v1/auth/login")
_guard = APIBlueprint("guard", __name__)  # lends its auth_required to routes of any blueprint


@dataclass(frozen=True)
class Requirement:
    """Something the account must do first; routes that help doing it set `allowance`."""

    code: str  # the 403's error code
    allowance: str  # keyword of requires() that lets a route through anyway
    message: str
    applies: Callable[[dict], bool]


REQUIREMENTS = (
    # Enrollment first: a user owing both enrolls, then changes the password (the enrollment
    # routes allow both, the password route only this one).
    Requirement("2fa_enrollment_required", "allow_2fa_enrollment",
                "Set up two-factor authentication first (POST /api/v1/me/2fa/enrollment).",
                lambda user: bool(user.get("totp_enrollment_required"))),
    Requirement("password_change_required", "allow_password_change",
                "Change your password first (POST /api/v1/me/password).",
                lambda user: bool(user.get("must_change_password"))),
)
WITHOUT_TENANT = "allow_without_tenant"
ALLOWANCES = frozenset({*(requirement.allowance for requirement in REQUIREMENTS), WITHOUT_TENANT})
TENANT_ACCESS = "tenant_access"  # the session cache's key for "may this user work in that tenant"


def outstanding(user: dict) -> list[Requirement]:
    return [requirement for requirement in REQUIREMENTS if requirement.applies(user)]


@dataclass(frozen=True)
class Principal:
    user: dict
    session_id: str

    @property
    def user_id(self) -> str:
        return self.user["id"]

    @property
    def tenant_id(self) -> str:
        """The session's active tenant: every read and write is confined to it."""
        return self.user.get("session_tenant_id") or DEFAULT_TENANT_ID


def mint_access_token(user: dict, session_id: str) -> tuple[str, int]:
    ttl = current_app.config["ACCESS_TOKEN_TTL"]
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": user["id"], "sid": session_id, "username": user["username"],
              "iat": now, "exp": now + ttl}
    return jwt.encode(claims, current_app.config["JWT_SECRET"], algorithm="HS256"), ttl


class VerifiedTokens:
    """The claims of access tokens whose signature this process checked already: a client sends
    the same token with every request, and PyJWT's decode costs more than the rest of a cached
    request's guard (it re-inspects the key on every call). Keyed by the secret and the whole
    token, signature included; a token past its `exp` is decoded again (and refused as expired)."""

    def __init__(self, size: int = 10_000):
        self.size = size
        self._claims: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def decode(self, token: str, secret: str) -> dict:
        key = (secret, token)
        claims = self._claims.get(key)
        if claims is not None and claims["exp"] > time.time():
            return claims
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub", "sid"]})
        with self._lock:
            if len(self._claims) >= self.size:
                self._claims.pop(next(iter(self._claims)))  # the oldest
            self._claims[key] = claims
        return claims


verified_tokens = VerifiedTokens()


@auth.verify_token
def _verify(token: str):
    if not token:
        raise Unauthorized("Sign in first: this needs a bearer access token.", code="token_missing")
    try:
        claims = verified_tokens.decode(token, current_app.config["JWT_SECRET"])
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The access token has expired; refresh it or sign in again.", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("The access token is not valid.", code="token_invalid") from None
    # A user who owes a requirement is never cached: once it is met, the next request sees it.
    user = session_cache().session_user(claims["sid"], _fetch_session_user,
                                        cacheable=lambda found: not outstanding(found))
    if user["id"] != claims["sub"]:
        raise Unauthorized("The access token is not valid.", code="token_invalid")
    g.principal = Principal(user=user, session_id=claims["sid"])
    return g.principal


def _fetch_session_user(session_id: str) -> dict:
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.session_user(session_id)


def _fetch_decision(user_id: str, permission: str, tenant_id: str) -> bool:
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.rbac.authorize(user_id, permission, tenant_id)


def _fetch_tenant_access(user_id: str, _key: str, tenant_id: str) -> bool:
    """A member of the tenant, or a super admin while it exists (tenancy is the authority)."""
    with current_app.extensions["rpc"].client() as rpc:
        if rpc.tenancy.is_member(user_id, tenant_id):
            return True
        return rpc.rbac.authorize(user_id, SUPER_ADMIN_ONLY, tenant_id) and rpc.tenancy.tenant_exists(tenant_id)


def has_tenant_access(principal: Principal) -> bool:
    """Cached like decisions; tenancy's membership and tenant events drop the answers. A user
    identity made in the tenant moments ago (tenancy has not heard yet) is let in uncached."""
    if session_cache().authorized(principal.user_id, TENANT_ACCESS, principal.tenant_id, _fetch_tenant_access):
        return True
    return principal.user.get("tenant_membership") == "provisional"


def _record_denial(permission: str, tenant_id: str) -> None:
    """Audited as rbac.authorization_denied; the refusal stands even if recording fails."""
    try:
        with current_app.extensions["rpc"].client() as rpc:
            rpc.rbac.record_denial(actor().__dict__, permission, tenant_id, f"{request.method} {request.path}")
    except Exception:  # noqa: BLE001 - never turn a 403 into a 500
        log.warning("could not record an authorization denial", exc_info=True,
                    extra={"request_id": g.get("request_id")})


def session_cache():
    return current_app.extensions["session_cache"].cache


@auth.error_processor
def _missing(error):
    raise Unauthorized("Sign in first: this needs a bearer access token.", code="token_missing")


def current_principal() -> Principal:
    return g.principal


def actor() -> Actor:
    """Who is calling, as services record it in events."""
    principal = g.get("principal")
    user = principal.user if principal else {}
    return Actor(user_id=user.get("id"), username=user.get("username"), display_name=user.get("full_name"),
                 email=user.get("email"), ip=request.remote_addr, request_id=g.get("request_id"))


def requires(permission: str | None = None, **allowances: bool):
    """Guard a route: a valid session, no outstanding requirement unless the route allows
    it (`allow_password_change=True`), access to the session's tenant unless
    `allow_without_tenant=True`, and `permission` in the active tenant when given
    (`SUPER_ADMIN_ONLY` for routes of super admins alone)."""
    if unknown := set(allowances) - ALLOWANCES:
        raise TypeError(f"unknown allowance(s) {sorted(unknown)}; known: {sorted(ALLOWANCES)}")
    allowed_through = {name for name, allowed in allowances.items() if allowed}

    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            principal = current_principal()
            for requirement in outstanding(principal.user):
                if requirement.allowance not in allowed_through:
                    raise Forbidden(requirement.message, code=requirement.code)
            if WITHOUT_TENANT not in allowed_through and not has_tenant_access(principal):
                raise Forbidden("Your access to this tenant ended: switch tenant (POST /api/v1/me/tenant).",
                                code="tenant_unavailable", details={"tenant_id": principal.tenant_id})
            if permission and not session_cache().authorized(principal.user_id, permission,
                                                             principal.tenant_id, _fetch_decision):
                _record_denial(permission, principal.tenant_id)
                message = ("Only super admins may do this." if permission == SUPER_ADMIN_ONLY
                           else f"This needs the permission {permission}.")
                raise Forbidden(message, code="permission_denied", details={"permission": permission})
            return view(*args, **kwargs)

        guarded.required_permission = permission
        guarded.allowances = frozenset(allowed_through)
        return _guard.auth_required(auth)(guarded)

    return decorate


def holds(permission: str, tenant_id: str | None = None) -> bool:
    """Whether the signed-in user holds `permission` in the tenant (the active one by default),
    through the same cached decisions as requires(); SUPER_ADMIN_ONLY asks for a super admin."""
    principal = current_principal()
    return session_cache().authorized(principal.user_id, permission, tenant_id or principal.tenant_id,
                                      _fetch_decision)


def is_super_admin() -> bool:
    return holds(SUPER_ADMIN_ONLY)


def forbid(permission: str, message: str, details: dict | None = None):
    """Refuse inside a route as requires() does: audited, 403 permission_denied naming `permission`."""
    _record_denial(permission, current_principal().tenant_id)
    raise Forbidden(message, code="permission_denied", details={"permission": permission, **(details or {})})
