"""/api/v1/users: user administration (grows with the identity issue)."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import requires
from gateway.schemas import UserOut

bp = APIBlueprint("users", __name__, url_prefix="/api/v1/users", tag="Users")


@bp.get("/<string:user_id>")
@requires("admin.users")
@bp.output(UserOut)
@bp.doc(summary="One user", description="Needs `admin.users`.",
        responses={401: "Not signed in", 403: "Missing permission admin.users", 404: "No such user"})
def get_user(user_id):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.identity.get_user(user_id)
