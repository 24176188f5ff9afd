"""Rate limits of the endpoints that send mail or create accounts; no broker, no database.

Each limit allows `max` units (requests, or mails: a batch of K invitations counts K)
per fixed window of `window_seconds`, aligned on the Unix epoch, for one subject (a
client IP, an account, an address). The count lives in identity's database
(storage.take_rate), so every gateway and identity instance shares it. A fixed window
lets a burst of up to 2 x max straddle a window's end: simple, and enough against mail
flooding. `max` 0 turns a limit off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from kernel.ratelimit import window_bounds  # identity's windows are every service's (kernel/ratelimit.py)


@dataclass(frozen=True)
class Limit:
    name: str  # also the audit's `limit` and the counter key's prefix
    max: int
    window_seconds: int

    def key(self, subject: str | None) -> str:
        return f"{self.name}:{(subject or 'unknown').strip().lower()}"

    @property
    def enabled(self) -> bool:
        return self.max > 0


# name -> (setting that holds its max, how a refusal reads)
LIMITS = {
    "reset_requests_per_ip": ("GATEHOUSE_RESET_REQUESTS_PER_IP", "Too many password reset requests from this address."),
    "reset_mails_per_account": ("GATEHOUSE_RESET_MAILS_PER_ACCOUNT", "Too many reset mails for this account; no mail sent."),
    "admin_resets_per_user": ("GATEHOUSE_ADMIN_RESETS_PER_USER", "Too many reset mails for this user."),
    "admin_resets_per_admin": ("GATEHOUSE_ADMIN_RESETS_PER_ADMIN", "Too many reset mails sent by you."),
    "invitations_per_admin": ("GATEHOUSE_INVITATIONS_PER_ADMIN", "Too many invitation mails sent by you."),
    "invitation_resends_per_address": ("GATEHOUSE_INVITATION_RESENDS_PER_ADDRESS",
                                       "Too many invitation mails to this address."),
    "registrations_per_ip": ("GATEHOUSE_REGISTRATIONS_PER_IP", "Too many registrations from this address."),
    "smtp_tests_per_admin": ("GATEHOUSE_SMTP_TESTS_PER_ADMIN", "Too many test mails sent by you."),
}


def limits_from_config(config) -> dict[str, Limit]:
    window = config.integer("GATEHOUSE_RATE_LIMIT_WINDOW")
    return {name: Limit(name, config.integer(env), window) for name, (env, _) in LIMITS.items()}


def refusal_message(name: str) -> str:
    return LIMITS[name][1] + " Try again later."


def allows(count_with_this: int, limit: Limit) -> bool:
    """Whether the window's count, this request's units included, stays within the limit."""
    return not limit.enabled or count_with_this <= limit.max


def never_allows(units: int, limit: Limit) -> bool:
    """Whether a request of `units` is over the limit even in an empty window: waiting would not help."""
    return limit.enabled and units > limit.max


def retry_after(now: datetime, limit: Limit) -> int:
    """Whole seconds until the window ends and the count starts over (at least 1)."""
    _, end = window_bounds(now, limit.window_seconds)
    return max(1, math.ceil((end - now).total_seconds()))
