"""/api/v1/auth: registration, sign-in, token refresh and sign-out.

The web console keeps its refresh token where its scripts cannot read it: a request with
`X-Gatehouse-Client: console` to sign-in, the second sign-in step or refresh gets the refresh
token as an HttpOnly, SameSite=Strict cookie scoped to the refresh route (Secure when the
public URL is https) instead of in the body, and refresh takes it from that cookie when the body
has none, but only with that header: a cross-site form cannot set it, and a cross-site script
cannot send it without a CORS preflight the gateway does not grant for it (CSRF-safe). Sign-out
clears the cookie.
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, current_app, g, jsonify, request

from gateway.auth import actor, current_principal, mint_access_token, requires, session_cache
from gateway.schemas import LoginIn, RegisteredOut, RegisterIn
from gateway.schemas.mail import PasswordPolicyOut, RegistrationSettingsOut
from gateway.schemas.sessions import RefreshIn, SessionTokenOut
from gateway.schemas.twofactor import LoginOut, SecondFactorIn
from kernel.errors import Unauthorized

bp = APIBlueprint("auth", __name__, url_prefix="/api/v1/auth", tag="Authentication")

CLIENT_HEADER = "X-Gatehouse-Client"
CONSOLE = "console"
REFRESH_COOKIE = "gatehouse_refresh"
REFRESH_COOKIE_PATH = "/api/v1/auth/refresh"  # sent with refresh requests only
COOKIE_NOTE = ("With the header `X-Gatehouse-Client: console` the refresh token is not in the body but set as "
               "the HttpOnly, SameSite=Strict cookie `gatehouse_refresh` (path `/api/v1/auth/refresh`; Secure "
               "when the public URL is https).")


@bp.post("/register")
@bp.input(RegisterIn, arg_name="body")
@bp.output(RegisteredOut, status_code=201,
           description="The new account: pending approval, or active at once through an invitation")
@bp.doc(summary="Register an account",
        description="With `invitation_token` (from an invitation link) the invited account becomes active "
                    "with the invited role; `email` may then be left out (if given it must be the invited one). "
                    "Without one (self-registration) the account waits for an administrator's approval, and the "
                    "registration settings apply (`GET /api/v1/auth/registration`).",
        responses={403: "`registration_closed`: self-registration is off (invitations still work)",
                   404: "`invitation_not_found`", 409: "Username or email taken",
                   410: "`invitation_expired` or `invitation_used`",
                   422: "Invalid fields (`details.email`: also an address outside the allowed email domains)",
                   429: "`rate_limited`: more than `GATEHOUSE_REGISTRATIONS_PER_IP` self-registrations "
                        "from this address in the window (see Retry-After)"})
def register(body):
    with current_app.extensions["rpc"].client() as rpc:
        user = rpc.identity.register(actor().__dict__, **body)
    return user, 201, {"Location": f"/api/v1/users/{user['id']}"}


@bp.get("/password-policy")
@bp.output(PasswordPolicyOut)
@bp.doc(summary="The password policy, for sign-up and password forms",
        description="Read-only and anonymous: what a registration, invitation or reset page shows while the "
                    "user types (`min_length`, `max_length`, `refuse_common`). Changing it needs "
                    "`admin.settings` (`PUT /api/v1/settings/password-policy`).")
def password_policy():
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.get_password_policy()


@bp.get("/registration")
@bp.output(RegistrationSettingsOut)
@bp.doc(summary="Whether self-registration is open, for the registration and sign-in pages",
        description="Read-only and anonymous: `self_registration` (false: only invitations create accounts) and "
                    "`allowed_email_domains` (empty: any). Changing them is for super admins "
                    "(`PUT /api/v1/settings/registration`).")
def registration():
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.get_registration_settings()


@bp.post("/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(LoginOut)
@bp.doc(summary="Sign in with username or email and password",
        description=f"Answers a short-lived access token and a single-use refresh token. {COOKIE_NOTE} "
                    "A locked account "
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
                    "row the second step is locked until an administrator unlocks the account. " + COOKIE_NOTE,
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
        description="The refresh token is spent: presenting it again closes the whole session. The web console "
                    "sends no `refresh_token` but the header `X-Gatehouse-Client: console` and its cookie "
                    "`gatehouse_refresh`; the answer then sets the next one as that cookie. " + COOKIE_NOTE,
        responses={401: "Refresh token invalid, reused, or session ended; `refresh_token_missing`: the console "
                        "header without a refresh cookie (sign in)",
                   422: "Invalid fields (`refresh_token` required unless the console header is sent)"})
def refresh(body):
    token = body.get("refresh_token")
    if token is None:
        if not _from_console():  # the cookie alone is never enough: a cross-site request cannot add the header
            return _missing_refresh_token()
        token = request.cookies.get(REFRESH_COOKIE)
        if not token:
            raise Unauthorized("No session to resume: sign in.", code="refresh_token_missing")
    try:
        with current_app.extensions["rpc"].client() as rpc:
            result = rpc.identity.refresh(actor().__dict__, token)
    except Unauthorized:
        if body.get("refresh_token") is None:  # the cookie's token is spent or its session ended: drop it
            g.clear_refresh_cookie = True
        raise
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
    response = Response(status=204)
    _clear_refresh_cookie(response)
    return response


def _from_console() -> bool:
    return request.headers.get(CLIENT_HEADER, "").strip().lower() == CONSOLE


def _missing_refresh_token() -> Response:
    response = jsonify({"error": {"code": "validation_error", "message": "The request has invalid fields.",
                                  "details": {"json": {"refresh_token": ["Missing data for required field."]}}}})
    response.status_code = 422
    return response


def set_refresh_cookie(response: Response, token: str) -> None:
    response.set_cookie(REFRESH_COOKIE, token, max_age=current_app.config.get("REFRESH_COOKIE_MAX_AGE"),
                        path=REFRESH_COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=current_app.config.get("CONSOLE_COOKIE_SECURE", False))


def _clear_refresh_cookie(response: Response) -> None:
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, httponly=True, samesite="Strict",
                           secure=current_app.config.get("CONSOLE_COOKIE_SECURE", False))


@bp.after_app_request
def _refresh_cookie(response: Response) -> Response:
    """Moves a console sign-in's refresh token from the body into the cookie, and drops a cookie
    whose token the refresh refused."""
    if (token := g.get("console_refresh_token")) is not None:
        set_refresh_cookie(response, token)
    elif g.get("clear_refresh_cookie"):
        _clear_refresh_cookie(response)
    return response


def _tokens(result: dict) -> dict:
    token, ttl = mint_access_token(result["user"], result["session_id"])
    answer = {"access_token": token, "token_type": "Bearer", "expires_in": ttl,
              "refresh_token": result["refresh_token"], "session_id": result["session_id"], "user": result["user"],
              "enrollment_required": bool(result["user"].get("totp_enrollment_required"))}
    if _from_console():
        g.console_refresh_token = answer.pop("refresh_token")
    return answer
