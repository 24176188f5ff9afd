"""Mail and settings rules that need no broker, no database and no network.

Message building, the retry schedule, and validation of the admin settings the
mail flows depend on (SMTP, password policy). The sending itself is in mailer.py.
"""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

from kernel.db import aware
from contracts.identity import (  # noqa: F401 - re-exported
    HOSTNAME, IPV6, TLS_MODES, email_domain_allowed, normalize_email_domain, password_policy_problems,
    registration_settings_problems, smtp_problems)
from services.identity.domain import PasswordPolicy

INVITATION, PASSWORD_RESET = "invitation", "password_reset"
SMTP_FIELDS = ("host", "port", "tls_mode", "username", "from_address")

FIRST_RETRY_SECONDS = 2
MAX_RETRY_SECONDS = 30 * 60
# A new self-service reset mail per account at most this often (mail bombing).
RESET_MAIL_INTERVAL = timedelta(minutes=1)



# --- retries ------------------------------------------------------------------------

def retry_delay(attempts: int) -> timedelta:
    """Pause after the `attempts`-th failed delivery: 2, 4, 8 ... s, at most 30 minutes."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS))


def should_give_up(attempts: int, max_attempts: int) -> bool:
    return attempts >= max_attempts


def describe_failure(error: BaseException, *secrets: str, username: str | None = None) -> str:
    """What a failed delivery records: the error's kind and text, never a secret we hold, neither
    as it is nor as SMTP sends it (a server may quote what it was sent): base64 of the secret alone
    (AUTH LOGIN) and, given the SMTP `username`, of "\\0username\\0secret" (AUTH PLAIN)."""
    text = f"{type(error).__name__}: {error}"
    forms = set()
    for secret in secrets:
        if secret:
            forms |= {secret, _base64(secret)}
            if username:
                forms.add(_base64(f"\0{username}\0{secret}"))
    for form in sorted(forms, key=len, reverse=True):  # an encoded form first: it may hold the secret's text
        text = text.replace(form, "***")
    return text[:300]


def _base64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def reset_mail_allowed(last_requested_at: datetime | None, now: datetime) -> bool:
    return last_requested_at is None or aware(now) - aware(last_requested_at) >= RESET_MAIL_INTERVAL


# --- messages -----------------------------------------------------------------------

def link(public_url: str, kind: str, token: str) -> str:
    """The token rides in the fragment: browsers never send it, so no server log holds it."""
    page = "invite" if kind == INVITATION else "reset-password"
    return f"{public_url.rstrip('/')}/{page}#token={token}"


def _when(moment: datetime) -> str:
    return aware(moment).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def build_message(kind: str, sender: str, recipient: str, url: str, expires_at: datetime) -> EmailMessage:
    """A plain-text mail with one link."""
    message = EmailMessage()
    message["From"], message["To"] = sender, recipient
    if kind == INVITATION:
        message["Subject"] = "You are invited to Gatehouse"
        body = (f"You have been invited to create an account on Gatehouse.\n\n"
                f"Open this link to choose your username and password:\n\n{url}\n\n"
                f"The link works once and expires at {_when(expires_at)}.\n"
                f"If you did not expect this invitation, ignore this mail.\n")
    else:
        message["Subject"] = "Reset your Gatehouse password"
        body = (f"Someone asked to reset the password of your Gatehouse account.\n\n"
                f"Open this link to choose a new password:\n\n{url}\n\n"
                f"The link works once and expires at {_when(expires_at)}.\n"
                f"If you did not ask for this, ignore this mail: your password stays as it is.\n")
    message.set_content(body)
    return message


def build_test_message(sender: str, recipient: str) -> EmailMessage:
    """The mail of "send a test mail" (POST /api/v1/settings/smtp/test)."""
    message = EmailMessage()
    message["From"], message["To"] = sender, recipient
    message["Subject"] = "Gatehouse test mail"
    message.set_content("This is a test mail from Gatehouse: its SMTP settings work.\n"
                        "A super admin sent it from the settings. Nothing needs to be done.\n")
    return message


# --- settings -----------------------------------------------------------------------

def changed_fields(before: dict | None, after: dict | None, fields) -> list[str]:
    before, after = before or {}, after or {}
    return [field for field in fields if before.get(field) != after.get(field)]


POLICY_FIELDS = ("min_length", "max_length", "refuse_common")
REGISTRATION_FIELDS = ("self_registration", "allowed_email_domains")


def password_policy(values: dict) -> PasswordPolicy:
    """The policy an admin submitted; missing fields take the defaults."""
    defaults = PasswordPolicy()
    return PasswordPolicy(**{field: getattr(defaults, field) if values.get(field) is None else values[field]
                             for field in POLICY_FIELDS})
