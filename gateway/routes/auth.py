"""/api/v1/auth: registration, sign-in, token refresh and sign-out."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app, request

from gateway.auth import actor, current_principal, mint_access_token, requires, session_cache
from gateway.schemas import LoginIn, RegisteredOut, RegisterIn
from gateway.schemas.sessions import RefreshIn, SessionTokenOut
from gateway.schemas.twofactor import LoginOut, SecondFactorIn

bp = APIBlueprint("auth", __name__, url_prefix="/api/v1/auth", tag="Authentication")


@bp.post("/register")
@bp.input(RegisterIn, arg_name="body")
@bp.output(RegisteredOut, status_code=201,
           description="The new account: pending approval, or active at once through an invitation")
@bp.doc(summary="Register an account",
        description="With `invitation_token` (from an invitation link) the invited account becomes active "
                    "with the invited role; `email` may then be left out (if given it must be the invited one).",
        responses={404: "`invitation_not_found`", 409: "Username or email taken",
                   410: "`invitation_expired` or `invitation_used`", 422: "Invalid fields",
                   429: "`rate_limited`: more than `GATEHOUSE_REGISTRATIONS_PER_IP` self-registrations "
                        "from this address in the window (see Retry-After)"})
def register(body):
    with current_app.extensions["rpc"].client() as rpc:
        user = rpc.identity.register(actor().__dict__, **body)
    return user, 201, {"Location": f"/api/v1/users/{user['id']}"}


@bp.post("/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(LoginOut)
@bp.doc(summary="Sign in with username or email and password",
        description="Answers a short-lived access token and a single-use refresh token. A locked account "
                    "gets the same answer as a wrong password. An account with 2FA gets no tokens but "
                    "`second_factor_required`, a single-use `login_ticket` (valid `expires_in` seconds) and the "
                    "`methods`: continue with `POST /api/v1/auth/login/second-factor`. An account that must "
                    "enroll 2FA gets tokens with `enrollment_required`: they can do nothing but enroll.",
        responses={401: "Wrong credentials or account not active",
                   403: "`second_factor_locked`: right password, but the second step is locked (admin unlock)",
                   422: "Invalid fields", 429: "Too many failed sign-ins from this address (see Retry-After)"})
def login(body):
    with current_app.extensions["rpc"].client() as rpc:
        result = rpc.identity.login(actor().__dict__, body["login"], body["password"],
                                    request.user_agent.string)
    if result.get("second_factor_required"):
        return result
    return _tokens(result)


@bp.post("/login/second-factor")
@bp.input(SecondFactorIn, arg_name="body")
@bp.output(SessionTokenOut)
@bp.doc(summary="Second sign-in step: a TOTP code or a recovery code",
        description="With the `login_ticket` of the password step and either `code` (TOTP; each code works "
                    "once) or `recovery_code` (each works once). Answers the tokens of a new session. The ticket "
                    "is spent on success; a wrong code does not spend it but counts: after 10 wrong codes in a "
                    "row the second step is locked until an administrator unlocks the account.",
        responses={401: "`login_ticket_invalid`, `login_ticket_expired`, `invalid_code`, `code_reused`, "
                        "`recovery_code_invalid`",
                   403: "`second_factor_locked`", 422: "Invalid fields (exactly one of code, recovery_code)"})
def login_second_factor(body):
    with current_app.extensions["rpc"].client() as rpc:
        result = rpc.identity.login_second_factor(actor().__dict__, body["login_ticket"], body.get("code"),
                                                  body.get("recovery_code"), request.user_agent.string)
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
@requires(allow_password_change=True, allow_2fa_enrollment=True, allow_without_tenant=True)
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
            "session_id": result["session_id"], "user": result["user"],
            "enrollment_required": bool(result["user"].get("totp_enrollment_required"))}
