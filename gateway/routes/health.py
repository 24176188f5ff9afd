"""Liveness and readiness probes."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app
from kombu import Connection

from gateway.schemas import HealthOut
from kernel import SERVICES

bp = APIBlueprint("health", __name__, tag="Operations")


@bp.get("/healthz")
@bp.output(HealthOut)
@bp.doc(summary="The gateway process is alive")
def healthz():
    return {"status": "ok", "checks": {}}


@bp.get("/readyz")
@bp.output(HealthOut, description="Every dependency answers")
@bp.doc(summary="The broker and every service answer", responses={503: "Something does not answer"})
def readyz():
    checks = {"broker": _broker()}
    if checks["broker"] == "ok":
        try:
            with current_app.extensions["health_rpc"].client() as rpc:
                replies = {name: getattr(rpc, name).health.call_async() for name in SERVICES}
                for name, reply in replies.items():
                    checks[name] = _answer(reply)
        except Exception as error:  # the pool could not even get a client
            checks.update({name: f"unavailable: {type(error).__name__}" for name in SERVICES if name not in checks})
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503


def _broker() -> str:
    try:
        with Connection(current_app.config["AMQP_URI"], connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return "ok"
    except Exception as error:
        return f"unavailable: {type(error).__name__}"


def _answer(reply) -> str:
    try:
        return "ok" if reply.result()["status"] == "ok" else "degraded"
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
