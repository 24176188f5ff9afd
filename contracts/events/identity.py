"""identity's events: their types and payloads.

Events describe what changed, never a secret: no password, hash, token or link.
proxmox_sync and the gateway's session cache rely on the status, removal, password
and session events to cut access everywhere. audit records every event.
"""
from __future__ import annotations

from contracts.events import Payload, key, nested, payload, value

USER_REGISTERED = "identity.user_registered"
USER_CREATED = "identity.user_created"
USER_UPDATED = "identity.user_updated"
USER_STATUS_CHANGED = "identity.user_status_changed"
USER_REMOVED = "identity.user_removed"
INVITATION_SENT = "identity.invitation_sent"
INVITATION_ACCEPTED = "identity.invitation_accepted"
INVITATION_REVOKED = "identity.invitation_revoked"
INVITATION_EXPIRED = "identity.invitation_expired"
MAIL_FAILED = "identity.mail_failed"
PASSWORD_CHANGED = "identity.password_changed"
PASSWORD_RESET_REQUESTED = "identity.password_reset_requested"
PASSWORD_RESET_COMPLETED = "identity.password_reset_completed"
LOGIN_SUCCEEDED = "identity.login_succeeded"
LOGIN_FAILED = "identity.login_failed"
LOGIN_THROTTLED = "identity.login_throttled"
ACCOUNT_UNLOCKED = "identity.account_unlocked"
LOGOUT = "identity.logout"
SESSIONS_REVOKED = "identity.sessions_revoked"
SETTINGS_CHANGED = "identity.settings_changed"
SMTP_TEST_SENT = "identity.smtp_test_sent"
# Two-factor authentication (category auth).
TWO_FACTOR_ENROLLMENT_STARTED = "identity.2fa_enrollment_started"
TWO_FACTOR_ENROLLED = "identity.2fa_enrolled"
TWO_FACTOR_DISABLED = "identity.2fa_disabled"
TWO_FACTOR_CHALLENGED = "identity.2fa_challenged"
TWO_FACTOR_LOGIN_FAILED = "identity.2fa_login_failed"
TWO_FACTOR_RECOVERY_USED = "identity.2fa_recovery_used"
TWO_FACTOR_RECOVERY_LOW = "identity.2fa_recovery_low"
TWO_FACTOR_RECOVERY_REGENERATED = "identity.2fa_recovery_regenerated"
TWO_FACTOR_REQUIRED_FOR_USER = "identity.2fa_required_for_user"
TWO_FACTOR_REQUIREMENT_CLEARED = "identity.2fa_requirement_cleared"
TWO_FACTOR_POLICY_CHANGED = "identity.2fa_policy_changed"
TENANT_SWITCHED = "identity.tenant_switched"
RATE_LIMITED = "identity.rate_limited"

ALL = (USER_REGISTERED, USER_CREATED, USER_UPDATED, USER_STATUS_CHANGED, USER_REMOVED,
       INVITATION_SENT, INVITATION_ACCEPTED, INVITATION_REVOKED, INVITATION_EXPIRED, MAIL_FAILED,
       PASSWORD_CHANGED, PASSWORD_RESET_REQUESTED, PASSWORD_RESET_COMPLETED,
       LOGIN_SUCCEEDED, LOGIN_FAILED, LOGIN_THROTTLED, ACCOUNT_UNLOCKED, LOGOUT, SESSIONS_REVOKED,
       SETTINGS_CHANGED, SMTP_TEST_SENT,
       TWO_FACTOR_ENROLLMENT_STARTED, TWO_FACTOR_ENROLLED, TWO_FACTOR_DISABLED, TWO_FACTOR_CHALLENGED,
       TWO_FACTOR_LOGIN_FAILED, TWO_FACTOR_RECOVERY_USED, TWO_FACTOR_RECOVERY_LOW,
       TWO_FACTOR_RECOVERY_REGENERATED, TWO_FACTOR_REQUIRED_FOR_USER, TWO_FACTOR_REQUIREMENT_CLEARED,
       TWO_FACTOR_POLICY_CHANGED, TENANT_SWITCHED, RATE_LIMITED)

# After any of these, a user's existing access tokens must stop working at once
# (the gateway's session cache drops what it knows about the user). The 2FA ones
# change whether the user owes an enrollment before anything else.
ACCESS_CHANGING = (USER_STATUS_CHANGED, USER_REMOVED, USER_UPDATED, PASSWORD_CHANGED,
                   PASSWORD_RESET_COMPLETED, LOGOUT, SESSIONS_REVOKED,
                   TWO_FACTOR_ENROLLED, TWO_FACTOR_DISABLED, TWO_FACTOR_REQUIRED_FOR_USER,
                   TWO_FACTOR_REQUIREMENT_CLEARED, TENANT_SWITCHED)

# After these, what any user owes may have changed: the gateway's session cache drops everything.
EVERYONE_CHANGING = (TWO_FACTOR_POLICY_CHANGED,)


# --- accounts ---------------------------------------------------------------

@value
class UserProfile(Payload):
    """What events tell of an account (the `profile` of updates and status changes)."""

    username: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    status: str | None = None
    uid_number: int | None = None

    @classmethod
    def of(cls, user) -> "UserProfile":
        """The profile of a user row (anything with these attributes)."""
        return cls(username=user.username, email=user.email, first_name=user.first_name, last_name=user.last_name,
                   company=user.company, status=user.status, uid_number=user.uid_number)


class _FlatProfile(Payload):
    """A payload carrying the profile fields at its top level (user_registered, user_created, user_removed)."""

    @property
    def profile(self) -> UserProfile:
        return UserProfile(username=self.username, email=self.email, first_name=self.first_name,
                           last_name=self.last_name, company=self.company, status=self.status,
                           uid_number=self.uid_number)


@payload(USER_REGISTERED, "users")
class UserRegistered(_FlatProfile):
    """A new account made by its owner: self-registration (pending) or an accepted invitation (active).

    Subscribers: rbac, tenancy, proxmox_sync.
    """

    username: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    status: str | None = None
    uid_number: int | None = None
    invitation_id: str | None = None


@payload(USER_CREATED, "users")
class UserCreated(_FlatProfile):
    """A new account made by an administrator (or the bootstrap of the first admin). super_admin: made
    a super admin by an operator (`gatehouse admin create`); rbac grants the role on this event.

    Subscribers: rbac, tenancy, proxmox_sync.
    """

    username: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    status: str | None = None
    uid_number: int | None = None
    first_admin: bool = False
    super_admin: bool = False


@payload(USER_UPDATED, "users")
class UserUpdated(Payload):
    """changed: field -> {"from", "to"} for profile fields; profile: the account after the change.

    Subscribers: rbac, tenancy, proxmox_sync, gateway session cache.
    """

    changed: dict = key("changed", default_factory=dict)
    profile: UserProfile = nested(UserProfile, default_factory=UserProfile)

    @property
    def renamed_from(self) -> str | None:
        """The username before a rename, or None."""
        return ((self.changed or {}).get("username") or {}).get("from")


@payload(USER_STATUS_CHANGED, "users")
class UserStatusChanged(Payload):
    """kind: approved, or <from>_to_<to>.

    Subscribers: proxmox_sync, gateway session cache.
    """

    from_: str | None = key("from", default=None)
    to: str | None = None
    kind: str | None = None
    reason: str | None = None
    profile: UserProfile = nested(UserProfile, default_factory=UserProfile)


@payload(USER_REMOVED, "users")
class UserRemoved(_FlatProfile):
    """The account is gone; its profile as it was.

    Subscribers: rbac, tenancy, proxmox_sync, gateway session cache.
    """

    username: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    status: str | None = None
    uid_number: int | None = None


# Payloads that describe an account's profile (their `.profile`).
PROFILE_PAYLOADS = (UserRegistered, UserCreated, UserUpdated, UserStatusChanged, UserRemoved)


# --- invitations and mail ---------------------------------------------------

@payload(INVITATION_SENT, "users")
class InvitationSent(Payload):
    """user_id: the invitation's placeholder account; the envelope's tenant is the inviting one.

    Subscribers: tenancy.
    """

    email: str | None = None
    role: str | None = None
    user_id: str | None = None
    expires_at: str | None = None
    resent: bool = False


@payload(INVITATION_ACCEPTED, "users")
class InvitationAccepted(Payload):
    """rbac assigns `role` in `tenant_id` to `user_id`; tenancy makes the user a member of `tenant_id`.

    Subscribers: rbac, tenancy.
    """

    email: str | None = None
    role: str | None = None
    tenant_id: str | None = None
    user_id: str = key("user_id")
    username: str | None = None


@payload(INVITATION_REVOKED, "users")
class InvitationRevoked(Payload):
    """tenancy ends the placeholder's (`user_id`) membership of the inviting tenant.

    Subscribers: tenancy.
    """

    email: str | None = None
    user_id: str | None = None


@payload(INVITATION_EXPIRED, "users")
class InvitationExpired(Payload):
    """Subscribers: none (audit only)."""

    email: str | None = None


@payload(MAIL_FAILED, "system")
class MailFailed(Payload):
    """A mail job failed (gave_up: for good). Subscribers: none (audit only)."""

    kind: str | None = None
    ref_id: str | None = None
    attempts: int | None = None
    error: str | None = None
    gave_up: bool = False


# --- passwords --------------------------------------------------------------

@payload(PASSWORD_CHANGED, "auth")
class PasswordChanged(Payload):
    """Subscribers: proxmox_sync (the directory's password), gateway session cache."""

    by_admin: bool = False


@payload(PASSWORD_RESET_REQUESTED, "auth")
class PasswordResetRequested(Payload):
    """Subscribers: none (audit only)."""

    by_admin: bool = False


@payload(PASSWORD_RESET_COMPLETED, "auth")
class PasswordResetCompleted(Payload):
    """Subscribers: proxmox_sync (the directory's password), gateway session cache."""


# --- sessions and login protection ------------------------------------------

@payload(LOGIN_SUCCEEDED, "auth")
class LoginSucceeded(Payload):
    """second_factor: totp or recovery_code when the password step was followed by one.

    Subscribers: none (audit only).
    """

    session_id: str | None = None
    second_factor: str | None = None


@payload(LOGIN_FAILED, "auth")
class LoginFailed(Payload):
    """via: login, password_change or 2fa_change. Subscribers: none (audit only)."""

    reason: str | None = None
    login: str | None = None
    via: str | None = None


@payload(LOGIN_THROTTLED, "auth")
class LoginThrottled(Payload):
    """scope: account or ip. Subscribers: none (audit only)."""

    scope: str | None = None
    login: str | None = None
    retry_after: int | None = None


@payload(RATE_LIMITED, "auth")
class RateLimited(Payload):
    """A request refused (or a mail not sent) by a rate limit; `limit` names which.

    Subscribers: none (audit only).
    """

    limit: str | None = None
    reason: str | None = None
    retry_after: int | None = None


@payload(ACCOUNT_UNLOCKED, "auth")
class AccountUnlocked(Payload):
    """Subscribers: none (audit only)."""


@payload(LOGOUT, "auth")
class Logout(Payload):
    """Subscribers: gateway session cache."""

    session_id: str | None = None


@payload(SESSIONS_REVOKED, "auth")
class SessionsRevoked(Payload):
    """reason: user_request, admin, password_changed, refresh_token_reuse, status_changed, ...

    Subscribers: gateway session cache.
    """

    session_ids: list = key("session_ids", default_factory=list)
    reason: str | None = None


# --- settings ---------------------------------------------------------------

@payload(SETTINGS_CHANGED, "settings")
class SettingsChanged(Payload):
    """Names the fields that changed, never their values (the SMTP password is one).

    Subscribers: none (audit only).
    """

    fields: list = key("fields", default_factory=list)


@payload(SMTP_TEST_SENT, "settings")
class SmtpTestSent(Payload):
    """A super admin's test mail (POST /api/v1/settings/smtp/test): where to, whether the SMTP
    server took it, and why not (the SMTP error in words, never the password).

    Subscribers: none (audit only).
    """

    to: str | None = None
    sent: bool = False
    error: str | None = None


# --- two-factor authentication ----------------------------------------------

@payload(TWO_FACTOR_ENROLLMENT_STARTED, "auth")
class TwoFactorEnrollmentStarted(Payload):
    """Subscribers: none (audit only)."""

    re_enrollment: bool = False


@payload(TWO_FACTOR_ENROLLED, "auth")
class TwoFactorEnrolled(Payload):
    """Subscribers: gateway session cache."""

    re_enrollment: bool = False
    method: str = "totp"


@payload(TWO_FACTOR_DISABLED, "auth")
class TwoFactorDisabled(Payload):
    """by: self or admin. Subscribers: gateway session cache."""

    by: str | None = None


@payload(TWO_FACTOR_CHALLENGED, "auth")
class TwoFactorChallenged(Payload):
    """The password was right; a login ticket now waits for the second factor.

    Subscribers: none (audit only).
    """

    methods: list = key("methods", default_factory=list)


@payload(TWO_FACTOR_LOGIN_FAILED, "auth")
class TwoFactorLoginFailed(Payload):
    """reason: invalid_code, code_reused, recovery_code_invalid, locked or ticket_invalid; via: login or change.

    Subscribers: none (audit only).
    """

    reason: str | None = None
    method: str | None = None
    via: str | None = None
    failures: int | None = None
    locked: bool = False


@payload(TWO_FACTOR_RECOVERY_USED, "auth")
class TwoFactorRecoveryUsed(Payload):
    """Subscribers: none (audit only)."""

    remaining: int | None = None


@payload(TWO_FACTOR_RECOVERY_LOW, "auth")
class TwoFactorRecoveryLow(Payload):
    """Subscribers: none (audit only)."""

    remaining: int | None = None


@payload(TWO_FACTOR_RECOVERY_REGENERATED, "auth")
class TwoFactorRecoveryRegenerated(Payload):
    """Subscribers: none (audit only)."""

    count: int | None = None


@payload(TWO_FACTOR_REQUIRED_FOR_USER, "auth")
class TwoFactorRequiredForUser(Payload):
    """Subscribers: gateway session cache."""


@payload(TWO_FACTOR_REQUIREMENT_CLEARED, "auth")
class TwoFactorRequirementCleared(Payload):
    """Subscribers: gateway session cache."""


@payload(TWO_FACTOR_POLICY_CHANGED, "settings")
class TwoFactorPolicyChanged(Payload):
    """Subscribers: gateway session cache (drops everything)."""

    require_for_super_admin: bool = False


# --- tenants of a session ------------------------------------------------------

@payload(TENANT_SWITCHED, "auth")
class TenantSwitched(Payload):
    """One session of the user now works in `to`; both tenants' audit views show it.

    Subscribers: gateway session cache.
    """

    session_id: str | None = None
    from_: str | None = key("from", default=None)
    to: str | None = None
