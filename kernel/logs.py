"""Structured JSON logs on stderr, one line per record, tagged with the process's service.

Every line written while a request or a call is handled carries its context (request_id,
user_id, tenant_id; `bind`): the gateway binds it per request, services per worker
(kernel/calllog.py) from what the caller sent, so one request id ties the gateway's line
to every service's lines about it. Extra fields whose names look secret (the rule events
follow, envelope.looks_secret) are redacted, at any depth.
"""
from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from kernel.envelope import looks_secret

CONTEXT_FIELDS = ("request_id", "user_id", "tenant_id")
REDACTED = "[redacted]"
_context: contextvars.ContextVar[dict] = contextvars.ContextVar("gatehouse_log_context", default={})
# What every LogRecord has: the rest came from `extra=` (or a filter) and is checked for secrets.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def bind(**fields) -> contextvars.Token:
    """Set the log context of this thread / green thread; `unbind(token)` when done."""
    return _context.set({key: value for key, value in fields.items() if value})


def unbind(token: contextvars.Token) -> None:
    _context.reset(token)


def current() -> dict:
    return _context.get()


class ContextFilter(logging.Filter):
    """Adds the bound context to each record; a field given in `extra=` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class SecretFilter(logging.Filter):
    """Redacts extra fields named like a secret (password, token, hash, ...), at any depth."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in [key for key in vars(record) if key not in _RECORD_FIELDS]:
            setattr(record, key, REDACTED if looks_secret(key) else redact(getattr(record, key)))
        return True


def redact(value):
    if isinstance(value, dict):
        return {key: REDACTED if looks_secret(key) else redact(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(inner) for inner in value]
    return value


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                       rename_fields={"asctime": "time", "levelname": "level"},
                                       static_fields={"service": service}))
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretFilter())  # after the context: it checks what that added too
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("amqp", "kombu", "nameko", "werkzeug", "gunicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
