"""Invitation rules that need no broker and no database."""
from __future__ import annotations

import re
from datetime import datetime

from services.identity.domain import normalize_email
from services.identity.mail import aware

PENDING, ACCEPTED, REVOKED, EXPIRED = "pending", "accepted", "revoked", "expired"
STATUSES = (PENDING, ACCEPTED, REVOKED, EXPIRED)
MAX_PER_REQUEST = 50

_SEPARATORS = re.compile(r"[,;\s]+")


def parse_emails(emails: str | list) -> tuple[list[str], dict[str, str]]:
    """("a@x.com, b@y.com" or a list) -> (normalized addresses in order without repeats,
    {address as typed: problem}). All-or-nothing: callers refuse the lot on any problem."""
    if isinstance(emails, str):
        typed = [part for part in _SEPARATORS.split(emails) if part]
    elif isinstance(emails, list) and all(isinstance(item, str) for item in emails):
        typed = [item.strip() for item in emails if item.strip()]
    else:
        return [], {"emails": "must be a comma-separated string or a list of addresses"}
    if not typed:
        return [], {"emails": "name at least one address"}
    if len(typed) > MAX_PER_REQUEST:
        return [], {"emails": f"at most {MAX_PER_REQUEST} addresses at once"}
    addresses, problems = [], {}
    for address in typed:
        normalized, problem = normalize_email(address)
        if problem:
            problems[address[:254]] = problem
        elif normalized not in addresses:
            addresses.append(normalized)
    return addresses, problems


def is_expired(status: str, expires_at: datetime, now: datetime) -> bool:
    """A pending invitation past its expiry: the sweep marks it expired."""
    return status == PENDING and aware(expires_at) <= aware(now)


def token_refusal(status: str, expires_at: datetime, now: datetime) -> str | None:
    """Why a link of an invitation in this state cannot be used, or None when it can."""
    if status in (ACCEPTED, REVOKED):
        return "invitation_used"
    if status == EXPIRED or is_expired(status, expires_at, now):
        return "invitation_expired"
    return None
