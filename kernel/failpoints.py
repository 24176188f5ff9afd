"""Test-only fault injection: die at a named point, to prove nothing is lost.

GATEHOUSE_FAILPOINTS="outbox.after_commit=identity.user_registered" makes the
process SIGKILL itself right after committing that event and before publishing
it. Unset (always, in production) this costs one dict lookup.
"""
from __future__ import annotations

import os
import signal


def _parse(spec: str) -> dict[str, set[str]]:
    points: dict[str, set[str]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, match = item.partition("=")
        points.setdefault(name, set()).add(match or "*")
    return points


_POINTS = _parse(os.environ.get("GATEHOUSE_FAILPOINTS", ""))


def hit(name: str, subject: str) -> None:
    matches = _POINTS.get(name)
    if matches and ("*" in matches or subject in matches):
        os.kill(os.getpid(), signal.SIGKILL)
