"""Two-factor authentication rules that need no broker and no database.

TOTP is RFC 6238 with its defaults (SHA-1, 6 digits, 30 s steps); a code of the step
before or after the current one is accepted too (clock drift). Each accepted code's
step is remembered: a code of that step or an earlier one is a replay and refused, so
a code works once even within its window.

Recovery codes are 10 random `xxxxx-xxxxx` codes from an alphabet without look-alike
characters; each works once. Stored only as keyed digests of the normalized code.

The second sign-in step locks after MAX_SECOND_FACTOR_FAILURES wrong codes in a row
(a success resets the count) until an administrator unlocks the account.
"""
from __future__ import annotations

import base64
import hmac
import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno

from kernel.db import aware

ISSUER = "Gatehouse"
DIGITS, PERIOD, ALGORITHM = 6, 30, "SHA1"
DRIFT_STEPS = 1  # accept the step before and after the current one

RECOVERY_CODE_COUNT = 10
RECOVERY_CODES_LOW = 3  # fewer left than this: the user is warned (event 2fa_recovery_low)
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: read aloud and typed by hand
RECOVERY_GROUP, RECOVERY_GROUPS = 5, 2

MAX_SECOND_FACTOR_FAILURES = 10
MAX_LOGIN_TICKET_TTL = 300  # seconds: the password step's ticket never outlives 5 minutes
ENROLLMENT_TTL = timedelta(minutes=15)  # a started enrollment must be confirmed within this

METHODS = ("totp", "recovery_code")

# Why a second factor was refused (the `reason` of 2fa_login_failed and the error code).
INVALID_CODE, CODE_REUSED, RECOVERY_CODE_INVALID = "invalid_code", "code_reused", "recovery_code_invalid"
LOCKED, TICKET_INVALID = "locked", "ticket_invalid"

# Refusals of 2FA changes (409 codes).
ALREADY_ENROLLED, NOT_ENROLLED = "2fa_already_enrolled", "2fa_not_enrolled"
REQUIREMENT_ACTIVE, REQUIREMENT_NOT_ACTIVE = "2fa_requirement_active", "2fa_requirement_not_active"
REQUIRED_BY_POLICY, REQUIRED_BY_ADMIN = "2fa_required_by_policy", "2fa_required"
OWN_ACCOUNT = "own_account"


# --- TOTP ------------------------------------------------------------------------

def new_secret() -> str:
    """160 random bits in base32, the size RFC 4226 recommends for SHA-1."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// URI authenticator apps read (issuer Gatehouse, account = username)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    return segno.make(uri, error="m").svg_inline(scale=4)


def qr_png_base64(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="png", scale=5)
    return base64.b64encode(buffer.getvalue()).decode()


def normalize_code(code: str | None) -> str | None:
    """The 6 digits of a typed code (spaces allowed, as apps show `123 456`), else None."""
    digits = "".join((code or "").split())
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else None


def matching_step(secret: str, code: str | None, now: float) -> int | None:
    """The time step (of now, the one before or the one after) whose code this is, else None."""
    typed = normalize_code(code)
    if typed is None:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    matched = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Every candidate is compared (no early exit), each in constant time.
        if hmac.compare_digest(totp.generate_otp(step), typed):
            matched = step
    return matched


def check_code(secret: str, code: str | None, now: float, last_step: int | None) -> tuple[int | None, str | None]:
    """(the step to remember, None) for a fresh valid code; (None, INVALID_CODE or CODE_REUSED) otherwise."""
    step = matching_step(secret, code, now)
    if step is None:
        return None, INVALID_CODE
    if last_step is not None and step <= last_step:
        return None, CODE_REUSED
    return step, None


# --- recovery codes --------------------------------------------------------------------

def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Distinct codes as shown to the user, e.g. `k7m2p-x9q4r` (about 50 bits each)."""
    codes: set[str] = set()
    while len(codes) < count:
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP * RECOVERY_GROUPS))
        codes.add("-".join(raw[i:i + RECOVERY_GROUP] for i in range(0, len(raw), RECOVERY_GROUP)))
    return sorted(codes)


def normalize_recovery_code(code: str | None) -> str | None:
    """What is stored (digested) of a typed code: lowercase, no spaces or dashes; None if it cannot be one."""
    cleaned = "".join((code or "").lower().replace("-", "").split())
    if len(cleaned) != RECOVERY_GROUP * RECOVERY_GROUPS or any(c not in RECOVERY_ALPHABET for c in cleaned):
        return None
    return cleaned


def recovery_codes_low(remaining: int) -> bool:
    return remaining < RECOVERY_CODES_LOW


# --- the second sign-in step's lock --------------------------------------------------

@dataclass(frozen=True)
class SecondFactorState:
    failures: int = 0
    locked_at: datetime | None = None

    @property
    def locked(self) -> bool:
        return self.locked_at is not None


def after_failure(state: SecondFactorState, now: datetime) -> SecondFactorState:
    failures = state.failures + 1
    locked_at = state.locked_at or (now if failures >= MAX_SECOND_FACTOR_FAILURES else None)
    return SecondFactorState(failures, locked_at)


def after_success() -> SecondFactorState:
    return SecondFactorState()


# --- enrollment ------------------------------------------------------------------

def enrollment_expired(started_at: datetime | None, now: datetime) -> bool:
    return started_at is None or aware(started_at) + ENROLLMENT_TTL <= now


def proof_problem(enrolled: bool, password: str | None, code: str | None) -> dict[str, str]:
    """What is missing from the proof a 2FA change needs: the password or a current code
    when enrolled; the password for a first enrollment (a stolen session must not plant a factor)."""
    if enrolled and not (password or code):
        return {"password": "give your current password or a current code from your authenticator"}
    if not enrolled and not password:
        return {"password": "is required to set up two-factor authentication"}
    return {}


# --- who must enroll, and what administrators may do -----------------------------------

def required_by_policy(policy_on: bool, is_super_admin: bool) -> bool:
    """The global policy "Require 2FA for super_admin" applies to this user."""
    return bool(policy_on and is_super_admin)


def must_enroll(enrolled: bool, required: bool, policy_on: bool, is_super_admin: bool) -> bool:
    return not enrolled and (bool(required) or required_by_policy(policy_on, is_super_admin))


def flags(enrolled: bool, required: bool, policy_on: bool, is_super_admin: bool) -> dict[str, bool]:
    """What the user list and the session user show besides totp_enrolled and totp_required."""
    return {"totp_required_by_policy": required_by_policy(policy_on, is_super_admin),
            "totp_enrollment_required": must_enroll(enrolled, required, policy_on, is_super_admin)}


def require_problem(enrolled: bool, required: bool) -> str | None:
    """Why an administrator may not require 2FA of the user, or None."""
    if enrolled:
        return ALREADY_ENROLLED
    if required:
        return REQUIREMENT_ACTIVE
    return None


def cancel_problem(required: bool) -> str | None:
    return None if required else REQUIREMENT_NOT_ACTIVE


def admin_disable_problem(actor_id: str | None, target_id: str, enrolled: bool, policy_on: bool,
                          target_is_super_admin: bool) -> str | None:
    """Why an administrator may not remove the user's 2FA, or None. Never on one's own
    account (self-lockout), never when the policy would force a super admin straight back to enrollment."""
    if not enrolled:
        return NOT_ENROLLED
    if actor_id == target_id:
        return OWN_ACCOUNT
    if required_by_policy(policy_on, target_is_super_admin):
        return REQUIRED_BY_POLICY
    return None


def self_disable_problem(enrolled: bool, required: bool, policy_on: bool, is_super_admin: bool) -> str | None:
    """Why users may not turn their own 2FA off: an administrator's requirement or the policy."""
    if not enrolled:
        return NOT_ENROLLED
    if required_by_policy(policy_on, is_super_admin):
        return REQUIRED_BY_POLICY
    if required:
        return REQUIRED_BY_ADMIN
    return None


# What a 409 says for each refusal (the code says which rule applied).
REFUSALS = {
    ALREADY_ENROLLED: "The user has already enrolled two-factor authentication.",
    NOT_ENROLLED: "Two-factor authentication is not enrolled.",
    REQUIREMENT_ACTIVE: "Two-factor authentication is already required of this user.",
    REQUIREMENT_NOT_ACTIVE: "No two-factor requirement is active for this user.",
    REQUIRED_BY_POLICY: "The policy \"Require 2FA for super_admin\" applies to this super admin: "
                        "two-factor authentication cannot be turned off.",
    REQUIRED_BY_ADMIN: "An administrator requires two-factor authentication of this account.",
    OWN_ACCOUNT: "Administrators cannot remove their own second factor here (self-lockout); "
                 "use DELETE /api/v1/me/2fa with your password or a code.",
}
