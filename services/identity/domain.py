"""Identity rules that need no broker and no database: validation, passwords, login decisions."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from contracts.identity import (  # noqa: F401 - the shared rules, re-exported for identity's code
    ACTIVE, FIRST_UID_NUMBER, INVITED, MIN_LENGTH_CEILING, ORDERS, PASSWORD_LENGTH_CEILING, PASSWORD_LENGTH_FLOOR,
    PENDING, PROFILE_FIELDS, RESERVED_USERNAMES, STATUSES, SUSPENDED, USER_SORTS, USERNAME_PATTERN,
    email_domain_allowed, normalize_email, profile_problems, username_problem)

# OWASP's argon2id option: m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)


@dataclass(frozen=True)
class PasswordPolicy:
    """Admin-configurable (settings key `password_policy`); no composition rules, no truncation."""

    min_length: int = 12
    max_length: int = 128
    refuse_common: bool = True


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    path = Path(__file__).with_name("common_passwords.txt")
    return frozenset(line.strip().lower() for line in path.read_text().splitlines() if line.strip())


def password_problems(password: str, policy: PasswordPolicy, username: str = "") -> list[str]:
    """Every rule the password breaks, in words a user can act on (NIST 800-63B style)."""
    problems = []
    if len(password) < policy.min_length:
        problems.append(f"must be at least {policy.min_length} characters")
    if len(password) > policy.max_length:
        problems.append(f"must be at most {policy.max_length} characters")
    if policy.refuse_common and password.lower() in common_passwords():
        problems.append("is a commonly used password")
    if username and username.lower() in password.lower():
        problems.append("must not contain the username")
    return problems


def registration_problems(username, first_name, last_name, email, password, policy) -> dict[str, str]:
    problems = profile_problems({"username": username, "first_name": first_name, "last_name": last_name,
                                 "email": email})
    if found := password_problems(password or "", policy, username or ""):
        problems["password"] = "; ".join(found)
    return problems


def allowed_domains_text(domains: list[str]) -> str:
    """"example.com" or "one of the allowed domains (a.com, b.org)": what a refused email is told."""
    if len(domains) == 1:
        return domains[0]
    shown = ", ".join(domains[:10]) + (", ..." if len(domains) > 10 else "")
    return f"one of the allowed domains ({shown})"


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Verified against when the account does not exist, so that costs the same time
    (made once: hashing it on every such login would make unknown names the slow ones)."""
    return hash_password(secrets.token_urlsafe(16))


def generate_password() -> str:
    return secrets.token_urlsafe(18)  # 144 bits, 24 characters


def loggable_login(login: str) -> str:
    """What a failed login attempt may record of the name typed: never free text, which
    is sometimes a password typed into the wrong field."""
    candidate = (login or "").strip().lower()
    if username_problem(candidate) is None or normalize_email(candidate)[0]:
        return candidate[:64]
    return "(not a username or email)"


def login_refusal(status: str | None, password_ok: bool) -> str | None:
    """Why a login is refused (for the audit log), or None when it succeeds."""
    if status is None:
        return "unknown_user"
    if not password_ok:
        return "bad_password"
    if status != ACTIVE:
        return f"status_{status}"
    return None


# --- user administration ------------------------------------------------------

OWN_PROFILE_FIELDS = ("first_name", "last_name")  # what users change themselves (PATCH /me)

# Approval, refusal, suspension and reactivation; invited users change only through their invitation.
STATUS_TRANSITIONS = frozenset({(PENDING, ACTIVE), (PENDING, SUSPENDED), (ACTIVE, SUSPENDED), (SUSPENDED, ACTIVE)})

OWN_ACCOUNT, FIRST_ADMIN_PROTECTED = "own_account", "first_admin_protected"
DELETE, SUSPEND, CHANGE_ROLE = "delete", "suspend", "change_role"


def email_lookup_forms(value) -> list[str]:
    """The stored forms an address someone typed may have: its normalized form (an IDN domain in
    ASCII form, as stored since the rule; `ada@exämple.com` finds `ada@xn--exmple-cua.com`) and as
    typed, trimmed and in lower case (an address stored before the rule, e.g. a non-ASCII local
    part). Empty for no text."""
    typed = value.strip().lower() if isinstance(value, str) else ""
    if not typed:
        return []
    normalized = normalize_email(typed)[0]
    return [normalized, typed] if normalized and normalized != typed else [typed]


def clean_profile(fields: dict) -> dict:
    """The stored form of valid profile fields: trimmed names, normalised email."""
    cleaned = {key: value.strip() if isinstance(value, str) else value for key, value in fields.items()}
    if "email" in cleaned:
        cleaned["email"] = normalize_email(cleaned["email"])[0]
    return cleaned


def status_change_problem(before: str, after: str) -> str | None:
    if before == after or (before, after) in STATUS_TRANSITIONS:
        return None
    if before == INVITED:
        return "an invited user changes status only by accepting or losing the invitation"
    return f"a {before} user cannot become {after}"


def protection_problem(action: str, actor_id: str | None, target_id: str, target_is_first_admin: bool) -> str | None:
    """Why an administrator may not `action` (delete, suspend, change_role) the target, or None."""
    if action in (DELETE, SUSPEND) and actor_id == target_id:
        return OWN_ACCOUNT
    if target_is_first_admin:
        return FIRST_ADMIN_PROTECTED
    return None
