"""/api/v1/auth: registration and login."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, mint_access_token
from gateway.schemas import LoginIn, RegisteredOut, RegisterIn, TokenOut

bp = APIBlueprint("auth", __name__, url_prefix="/api/v1/auth", tag="Authentication")


@bp.post("/register")
@bp.input(RegisterIn, arg_name="body")
@bp.output(RegisteredOut, status_code=201,
           description="The new account: pending approval, or active at once through an invitation")
@bp.doc(summary="Register an account",
        description="With `invitation_token` (from an invitation link) the invited account becomes active "
                    "with the invited role; `email` may then be left out (if given it must be the invited one).",
        responses={404: "`invitation_not_found`", 409: "Username or email taken",
                   410: "`invitation_expired` or `invitation_used`", 422: "Invalid fields"})
def register(body):
    with current_app.extensions["rpc"].client() as rpc:
        user = rpc.identity.register(actor().__dict__, **body)
    return user, 201, {"Location": f"/api/v1/users/{user['id']}"}


@bp.post("/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(TokenOut)
@bp.doc(summary="Sign in with username or email and password",
        responses={401: "Wrong credentials or account not active", 422: "Invalid fields"})
def login(body):
    with current_app.extensions["rpc"].client() as rpc:
        result = rpc.identity.login(actor().__dict__, body["login"], body["password"])
    token, ttl = mint_access_token(result["user"], result["session_id"])
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "user": result["user"]}
