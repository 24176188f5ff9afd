"""/api/v1/me: the signed-in user."""
from __future__ import annotations

from apiflask import APIBlueprint

from gateway.auth import current_principal, requires
from gateway.schemas import UserOut

bp = APIBlueprint("me", __name__, url_prefix="/api/v1/me", tag="Me")


@bp.get("")
@requires()
@bp.output(UserOut)
@bp.doc(summary="The signed-in user", responses={401: "Not signed in"})
def me():
    return current_principal().user
