"""Structured JSON logs on stderr, one line per record, tagged with the process's service."""
from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                       rename_fields={"asctime": "time", "levelname": "level"},
                                       static_fields={"service": service}))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("amqp", "kombu", "nameko", "werkzeug", "gunicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
