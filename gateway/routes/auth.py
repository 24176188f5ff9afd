"""/api/v1/auth: registration, sign-in, token refresh and sign-out."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app, request

from gateway.auth import actor, current_principal, mint_access_token, requires, session_cache
from gateway.schemas import LoginIn, RegisteredOut, RegisterIn
from gateway.schemas.sessions import RefreshIn, SessionTokenOut

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
@bp.output(SessionTokenOut)
@bp.doc(summary="Sign in with username or email and password",
        description="Answers a short-lived access token and a single-use refresh token. A locked account "
                    "gets the same answer as a wrong password.",
        responses={401: "Wrong credentials or account not active", 422: "Invalid fields",
                   429: "Too many failed sign-ins from this address (see Retry-After)"})
def login(body):
    with current_app.extensions["rpc"].client() as rpc:
        result = rpc.identity.login(actor().__dict__, body["login"], body["password"],
                                    request.user_agent.string)
    return _tokens(result)


@bp.post("/refresh")
@bp.input(RefreshIn, arg_name="body")
@bp.output(SessionTokenOut)
@bp.doc(summary="Trade a refresh token for new tokens",
        description="The refresh token is spent: presenting it again closes the whole session.",
        responses={401: "Refresh token invalid, reused, or session ended", 422: "Invalid fields"})
def refresh(body):
    with current_app.extensions["rpc"].client() as rpc:
        result = rpc.identity.refresh(actor().__dict__, body["refresh_token"])
    return _tokens(result)


@bp.post("/logout")
@requires(allow_password_change=True)
@bp.output({}, status_code=204)
@bp.doc(summary="Sign out: ends the current session", responses={401: "Not signed in"})
def logout():
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        rpc.identity.logout(actor().__dict__, principal.session_id)
    session_cache().forget_user(principal.user_id)  # this process at once; the others by the event
    return "", 204


def _tokens(result: dict) -> dict:
    token, ttl = mint_access_token(result["user"], result["session_id"])
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "refresh_token": result["refresh_token"],
            "session_id": result["session_id"], "user": result["user"]}
