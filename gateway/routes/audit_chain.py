"""/api/v1/audit/verify and /dead-letters: is the trail intact, and what could it not record."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import requires
from gateway.schemas.audit_chain import DeadLetterPageOut, DeadLetterQuery, VerifyOut
from kernel import SUPER_ADMIN_ONLY

bp = APIBlueprint("audit_chain", __name__, url_prefix="/api/v1/audit", tag="Audit")

SUPER_ADMINS_ONLY = {401: "Not signed in", 403: "Not a super admin"}


@bp.get("/verify")
@requires(SUPER_ADMIN_ONLY)
@bp.output(VerifyOut)
@bp.doc(summary="Check the audit trail's hash chain",
        description="Super admins only. Recomputes every kept record's hash from the chain's start (the "
                    "first record, or the checkpoint of the last retention purge) and compares the end "
                    "with the chain head; names the first record that does not match. Reads every record: "
                    "allow time on large stores (GATEHOUSE_AUDIT_VERIFY_TIMEOUT).",
        responses=SUPER_ADMINS_ONLY)
def verify():
    with current_app.extensions["long_rpc"].client() as rpc:
        return rpc.audit.verify()


@bp.get("/dead-letters")
@requires(SUPER_ADMIN_ONLY)
@bp.input(DeadLetterQuery, location="query", arg_name="query")
@bp.output(DeadLetterPageOut)
@bp.doc(summary="Events audit could not record",
        description="Super admins only. Messages audit's ingest rejected (not a valid event, or one that "
                    "could not be stored) wait in its dead-letter queue: their count and the first `limit`, read "
                    "without removing them.",
        responses=SUPER_ADMINS_ONLY)
def dead_letters(query):
    with current_app.extensions["rpc"].client() as rpc:
        return {**rpc.audit.dead_letters(query["limit"]), "next_cursor": None}
