"""Access tokens and route guards.

The gateway mints short-lived signed JWTs after identity accepts a password; every
guarded request checks the signature locally, then asks identity whether the session
and user are still live, and rbac whether the user holds the route's permission.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import jwt
from apiflask import APIBlueprint, HTTPTokenAuth
from flask import current_app, g, request

from kernel import DEFAULT_TENANT_ID
from kernel.envelope import Actor
from kernel.errors import Forbidden, Unauthorized

ISSUER = "gatehouse"
auth = HTTPTokenAuth(scheme="Bearer", security_scheme_name="BearerAuth",
                     description="An access token from POST /api/v1/auth/login")
_guard = APIBlueprint("guard", __name__)  # lends its auth_required to routes of any blueprint


@dataclass(frozen=True)
class Principal:
    user: dict
    session_id: str
    tenant_id: str = DEFAULT_TENANT_ID

    @property
    def user_id(self) -> str:
        return self.user["id"]


def mint_access_token(user: dict, session_id: str) -> tuple[str, int]:
    ttl = current_app.config["ACCESS_TOKEN_TTL"]
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": user["id"], "sid": session_id, "username": user["username"],
              "iat": now, "exp": now + ttl}
    return jwt.encode(claims, current_app.config["JWT_SECRET"], algorithm="HS256"), ttl


@auth.verify_token
def _verify(token: str):
    if not token:
        raise Unauthorized("Sign in first: this needs a bearer access token.", code="token_missing")
    try:
        claims = jwt.decode(token, current_app.config["JWT_SECRET"], algorithms=["HS256"], issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub", "sid"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The access token has expired; refresh it or sign in again.", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("The access token is not valid.", code="token_invalid") from None
    with current_app.extensions["rpc"].client() as rpc:
        user = rpc.identity.session_user(claims["sid"])
    if user["id"] != claims["sub"]:
        raise Unauthorized("The access token is not valid.", code="token_invalid")
    g.principal = Principal(user=user, session_id=claims["sid"])
    return g.principal


@auth.error_processor
def _missing(error):
    raise Unauthorized("Sign in first: this needs a bearer access token.", code="token_missing")


def current_principal() -> Principal:
    return g.principal


def actor() -> Actor:
    """Who is calling, as services record it in events."""
    principal = g.get("principal")
    return Actor(user_id=principal.user_id if principal else None,
                 username=principal.user["username"] if principal else None,
                 ip=request.remote_addr, request_id=g.get("request_id"))


def requires(permission: str | None = None):
    """Guard a route: a valid session, and `permission` in the active tenant when given."""

    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            if permission:
                principal = current_principal()
                with current_app.extensions["rpc"].client() as rpc:
                    allowed = rpc.rbac.authorize(principal.user_id, permission, principal.tenant_id)
                if not allowed:
                    raise Forbidden(f"This needs the permission {permission}.", code="permission_denied",
                                    details={"permission": permission})
            return view(*args, **kwargs)

        guarded.required_permission = permission
        return _guard.auth_required(auth)(guarded)

    return decorate
