"""Log context and one log line per call, for every entrypoint of a service (ServiceBase.call_log).

The context comes from the caller: the gateway sends request_id, user_id and tenant_id as
nameko context data with every RPC (gateway/rpc.py), and nameko forwards them on the RPCs a
service makes in turn; an event handler reads the actor and first tenant of the envelope.

Level of the per-call line: DEBUG when the call succeeded (the gateway already logs every
request at INFO, and a line per RPC would triple the volume), INFO when it was refused with a
domain error (a 4xx: worth seeing next to the request), WARNING when it crashed.
"""
from __future__ import annotations

import logging
import time

from nameko.extensions import DependencyProvider

from kernel import logs
from kernel.errors import GatehouseError

log = logging.getLogger("gatehouse.calls")


def call_fields(headers: dict, args: tuple) -> dict:
    """The log context of one call: the caller's context headers, else an event envelope's actor."""
    fields = {key: headers[key] for key in logs.CONTEXT_FIELDS if headers.get(key)}
    envelope = args[0] if args and isinstance(args[0], dict) else {}
    actor = envelope.get("actor")
    if isinstance(actor, dict):
        fields.setdefault("request_id", actor.get("request_id"))
        fields.setdefault("user_id", actor.get("user_id"))
        fields.setdefault("tenant_id", next(iter(envelope.get("tenant_ids") or ()), None))
        fields["event_id"] = envelope.get("id")
    return {key: value for key, value in fields.items() if value}


def outcome(exc_info) -> tuple[int, str]:
    """(log level, outcome) of a finished call: "ok", a domain error's code, or the exception's type."""
    if exc_info is None:
        return logging.DEBUG, "ok"
    error = exc_info[1]
    if isinstance(error, GatehouseError):
        return logging.INFO, error.code
    return logging.WARNING, type(error).__name__


class CallLog(DependencyProvider):
    def worker_setup(self, worker_ctx):
        # Runs in the worker's own green thread, like the call itself: the context is the call's alone.
        worker_ctx.log_token = logs.bind(**call_fields(worker_ctx.data, worker_ctx.args))
        worker_ctx.log_started = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        level, result_outcome = outcome(exc_info)
        log.log(level, "call", extra={
            "method": f"{worker_ctx.service_name}.{worker_ctx.entrypoint.method_name}",
            "entrypoint": type(worker_ctx.entrypoint).__name__, "outcome": result_outcome,
            "duration_ms": round((time.perf_counter() - worker_ctx.log_started) * 1000, 2),
        })

    def worker_teardown(self, worker_ctx):
        if (token := getattr(worker_ctx, "log_token", None)) is not None:  # None: another provider's setup failed first
            logs.unbind(token)
