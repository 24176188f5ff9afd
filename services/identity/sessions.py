"""Rules of sessions and login protection that need no broker and no database.

Throttling: failed password attempts are counted per key (`account:<user id>`,
`login:<name>` for names that match no account, `ip:<address>`). Once a key reaches
its limit it is locked; every further failure doubles the lock, up to an hour.
Failures are forgotten once the window has passed since the first failure and since
the end of the last lock (so a lock that outlived the window still doubles on the next
failure instead of starting over).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from kernel.crypto import token_digest
from kernel.db import aware
from services.identity import domain

MAX_LOCK_SECONDS = 3600
USER_AGENT_LENGTH = 256
SESSION_REUSE = "refresh_token_reuse"


@dataclass(frozen=True)
class ThrottleRules:
    max_failures: int = 5
    lock_seconds: int = 60
    ip_max_failures: int = 50
    window_seconds: int = 900

    @classmethod
    def from_config(cls, config) -> "ThrottleRules":
        return cls(max_failures=config.integer("GATEHOUSE_LOGIN_MAX_FAILURES"),
                   lock_seconds=config.integer("GATEHOUSE_LOGIN_LOCK_SECONDS"),
                   ip_max_failures=config.integer("GATEHOUSE_LOGIN_IP_MAX_FAILURES"),
                   window_seconds=config.integer("GATEHOUSE_LOGIN_FAILURE_WINDOW"))


@dataclass(frozen=True)
class Throttle:
    """What is known of one key's failures (the LoginThrottle row, without the database)."""

    failures: int
    first_failure_at: datetime
    locked_until: datetime | None = None


def account_key(user_id: str) -> str:
    return f"account:{user_id}"


def unknown_login_key(login: str) -> str:
    """The key of a name that matches no account: readable when it looks like a name,
    a digest when it is free text (sometimes a password typed into the wrong field)."""
    normalized = (login or "").strip().lower()
    if domain.loggable_login(normalized) == normalized[:64] and len(normalized) <= 64:
        return f"login:{normalized}"
    return f"login:#{token_digest(normalized)}"


def ip_key(ip: str | None) -> str:
    return f"ip:{ip or 'unknown'}"


def is_stale(state: Throttle | None, now: datetime, rules: ThrottleRules) -> bool:
    """True when there is nothing to remember any more."""
    if state is None:
        return True
    window = timedelta(seconds=rules.window_seconds)
    last_moment = max(aware(state.first_failure_at), aware(state.locked_until) or aware(state.first_failure_at))
    return now - last_moment > window


def lock_seconds(failures: int, limit: int, rules: ThrottleRules) -> int:
    """The lock after `failures` failures: none below `limit`, then doubling per failure, at most an hour."""
    if failures < limit:
        return 0
    return min(rules.lock_seconds * 2 ** min(failures - limit, 20), MAX_LOCK_SECONDS)


def after_failure(state: Throttle | None, now: datetime, limit: int, rules: ThrottleRules) -> Throttle:
    """The key's state after one more failed attempt."""
    if is_stale(state, now, rules):
        state = Throttle(failures=0, first_failure_at=now)
    failures = state.failures + 1
    seconds = lock_seconds(failures, limit, rules)
    return replace(state, failures=failures,
                   locked_until=now + timedelta(seconds=seconds) if seconds else aware(state.locked_until))


def retry_after(state: Throttle | None, now: datetime) -> int:
    """Seconds until the key may try again; 0 when it is not locked."""
    if state is None or state.locked_until is None:
        return 0
    remaining = (aware(state.locked_until) - now).total_seconds()
    return max(0, int(remaining + 0.999))


def counts_as_failure(refusal: str | None, password_ok: bool) -> bool:
    """A wrong password counts (known, unknown or locked account); a right one never does:
    an account that is not active, or locked, refuses the right password without punishing it."""
    return refusal is not None and not password_ok


# --- sessions and tokens -----------------------------------------------------

def session_expiry(now: datetime, refresh_ttl: int) -> datetime:
    """A session ends when its refresh token is not used for `refresh_ttl` seconds."""
    return now + timedelta(seconds=refresh_ttl)


def session_problem(revoked_at: datetime | None, expires_at: datetime | None, user_status: str | None,
                    now: datetime) -> str | None:
    """Why a session can no longer be used, or None while it is live."""
    if user_status is None:
        return "user_removed"
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and aware(expires_at) <= now:
        return "expired"
    if user_status != domain.ACTIVE:
        return f"status_{user_status}"
    return None


def user_agent(value: str | None) -> str:
    return (value or "")[:USER_AGENT_LENGTH]
