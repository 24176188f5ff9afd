"""/api/v1/users/{id}/sessions and /unlock: administrators' side of sessions and login protection."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, requires, session_cache
from gateway.isolation import changeable_user, visible_user
from gateway.schemas.sessions import SessionPageOut, SessionQuery

bp = APIBlueprint("sessions", __name__, url_prefix="/api/v1", tag="Users")


@bp.get("/users/<string:user_id>/sessions")
@requires("admin.users")
@bp.input(SessionQuery, location="query", arg_name="query")
@bp.output(SessionPageOut)
@bp.doc(summary="A user's live sessions", description="Needs `admin.users`.",
        responses={401: "Not signed in", 403: "Missing admin.users, or `outside_authority`",
                   404: "No such user in the active tenant"})
def user_sessions(user_id, query):
    with current_app.extensions["rpc"].client() as rpc:
        visible_user(rpc, user_id)
        return rpc.identity.list_sessions(actor().__dict__, user_id, None, query["limit"], query.get("cursor"))


@bp.delete("/users/<string:user_id>/sessions")
@requires("admin.users")
@bp.output({}, status_code=204)
@bp.doc(summary="End every session of a user", description="Needs `admin.users`. Their tokens stop working at once.",
        responses={401: "Not signed in", 403: "Missing admin.users, `cross_tenant_user` or `outside_authority`",
                   404: "No such user in the active tenant"})
def revoke_user_sessions(user_id):
    with current_app.extensions["rpc"].client() as rpc:
        changeable_user(rpc, user_id)
        rpc.identity.revoke_sessions(actor().__dict__, user_id, "admin")
    session_cache().forget_user(user_id)
    return "", 204


@bp.post("/users/<string:user_id>/unlock")
@requires("admin.users")
@bp.output({}, status_code=204)
@bp.doc(summary="Lift a user's sign-in lock", description="Needs `admin.users`. Client addresses keep their limits.",
        responses={401: "Not signed in", 403: "Missing admin.users, `cross_tenant_user` or `outside_authority`",
                   404: "No such user in the active tenant"})
def unlock(user_id):
    with current_app.extensions["rpc"].client() as rpc:
        changeable_user(rpc, user_id)
        rpc.identity.unlock_account(actor().__dict__, user_id)
    return "", 204
