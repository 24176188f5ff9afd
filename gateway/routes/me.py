"""/api/v1/me: the signed-in user, their sessions and their password."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, requires, session_cache
from gateway.schemas.sessions import MeOut, MyNamesIn, PasswordChangeIn, SessionPageOut, SessionQuery

bp = APIBlueprint("me", __name__, url_prefix="/api/v1/me", tag="Me")


@bp.get("")
@requires(allow_password_change=True, allow_2fa_enrollment=True, allow_without_tenant=True)
@bp.output(MeOut)
@bp.doc(summary="The signed-in user", description="`tenant_id`: this session's active tenant.",
        responses={401: "Not signed in"})
def me():
    principal = current_principal()
    return {**principal.user, "tenant_id": principal.tenant_id}


@bp.patch("")
@requires()
@bp.input(MyNamesIn, arg_name="body")
@bp.output(MeOut)
@bp.doc(summary="Change my names", description="`first_name` and/or `last_name` (only those sent change; the "
        "directory follows). Email, username and everything else are changed by an administrator.",
        responses={401: "Not signed in", 422: "Invalid fields"})
def update_me(body):
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        user = rpc.identity.update_own_names(actor().__dict__, principal.session_id, body)
    session_cache().forget_user(principal.user_id)  # this process at once; the others by the event
    return {**user, "tenant_id": principal.tenant_id}


@bp.post("/password")
@requires(allow_password_change=True)
@bp.input(PasswordChangeIn, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(summary="Change my password",
        description="Needs the current password (wrong ones count toward the account's lock). "
                    "Ends every other session of the account.",
        responses={401: "Not signed in, or current password wrong (`invalid_credentials`)",
                   422: "The new password breaks the policy (`details.new_password` says which rule)"})
def change_password(body):
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        rpc.identity.change_password(actor().__dict__, principal.session_id, body["current_password"],
                                     body["new_password"])
    session_cache().forget_user(principal.user_id)
    return "", 204


@bp.get("/sessions")
@requires()
@bp.input(SessionQuery, location="query", arg_name="query")
@bp.output(SessionPageOut)
@bp.doc(summary="My live sessions", description="`current` marks the session of this request.",
        responses={401: "Not signed in"})
def sessions(query):
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.list_sessions(actor().__dict__, principal.user_id, principal.session_id,
                                          query["limit"], query.get("cursor"))


@bp.delete("/sessions/<string:session_id>")
@requires()
@bp.output({}, status_code=204)
@bp.doc(summary="End one of my sessions", responses={401: "Not signed in", 404: "No such session of mine"})
def revoke_session(session_id):
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        rpc.identity.revoke_session(actor().__dict__, principal.user_id, session_id)
    session_cache().forget_user(principal.user_id)
    return "", 204


@bp.delete("/sessions")
@requires()
@bp.output({}, status_code=204)
@bp.doc(summary="End all my other sessions", description="The session of this request stays.",
        responses={401: "Not signed in"})
def revoke_other_sessions():
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        rpc.identity.revoke_sessions(actor().__dict__, principal.user_id, "user_request", principal.session_id)
    session_cache().forget_user(principal.user_id)
    return "", 204
