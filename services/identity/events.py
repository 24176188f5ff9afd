"""Every event identity publishes, in one place.

Events describe what changed, never a secret: no password, hash, token or link.
proxmox_sync and the gateway's session cache rely on the status, removal, password
and session events to cut access everywhere.
"""
from __future__ import annotations

import dataclasses

from kernel.envelope import Actor, Event, Resource

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
       SETTINGS_CHANGED,
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


def _user(user) -> Resource:
    return Resource("user", user.id, user.username or user.email)


def _profile(user) -> dict:
    return {"username": user.username, "email": user.email, "first_name": user.first_name,
            "last_name": user.last_name, "company": user.company, "status": user.status,
            "uid_number": user.uid_number}


def _event(type_: str, category: str, actor: Actor, resource: Resource, data: dict | None = None,
           outcome: str = "success", tenant_ids: tuple[str, ...] = ()) -> Event:
    return Event(type=type_, source="identity", category=category, actor=actor, resource=resource,
                 data=data or {}, outcome=outcome, tenant_ids=tenant_ids)


def in_tenants(tenant_ids, *events: Event) -> list[Event]:
    """The events, shown in these tenants' audit views too (e.g. every tenant of the user they are about)."""
    return [dataclasses.replace(event, tenant_ids=(*event.tenant_ids, *tenant_ids)) for event in events]


# --- accounts ---------------------------------------------------------------

def user_registered(user, actor: Actor, invitation_id: str | None = None) -> Event:
    """A new account made by its owner: self-registration (pending) or an accepted invitation (active)."""
    return _event(USER_REGISTERED, "users", actor, _user(user), {**_profile(user), "invitation_id": invitation_id})


def user_created(user, actor: Actor, first_admin: bool = False, super_admin: bool = False) -> Event:
    """A new account made by an administrator (or the bootstrap of the first admin). super_admin: made
    a super admin by an operator (`gatehouse admin create`); rbac grants the role on this event."""
    return _event(USER_CREATED, "users", actor, _user(user),
                  {**_profile(user), "first_admin": first_admin, "super_admin": super_admin})


def user_updated(user, actor: Actor, changed: dict) -> Event:
    """changed: field -> {"from", "to"} for profile fields."""
    return _event(USER_UPDATED, "users", actor, _user(user), {"changed": changed, "profile": _profile(user)})


def user_status_changed(user, actor: Actor, before: str, after: str, reason: str | None = None) -> Event:
    action = "approved" if (before, after) == ("pending", "active") else None
    return _event(USER_STATUS_CHANGED, "users", actor, _user(user),
                  {"from": before, "to": after, "kind": action or f"{before}_to_{after}",
                   "reason": reason, "profile": _profile(user)})


def user_removed(user, actor: Actor) -> Event:
    return _event(USER_REMOVED, "users", actor, _user(user), _profile(user))


# --- invitations and mail ---------------------------------------------------

def _invitation(invitation) -> Resource:
    return Resource("invitation", invitation.id, invitation.email)


def invitation_sent(invitation, actor: Actor, resent: bool = False) -> Event:
    return _event(INVITATION_SENT, "users", actor, _invitation(invitation),
                  {"email": invitation.email, "role": invitation.role, "user_id": invitation.user_id,
                   "expires_at": invitation.expires_at.isoformat(), "resent": resent},
                  tenant_ids=(invitation.tenant_id,))


def invitation_accepted(invitation, user, actor: Actor) -> Event:
    """rbac assigns `role` in `tenant_id` to `user_id` on this event."""
    return _event(INVITATION_ACCEPTED, "users", actor, _invitation(invitation),
                  {"email": invitation.email, "role": invitation.role, "tenant_id": invitation.tenant_id,
                   "user_id": user.id, "username": user.username}, tenant_ids=(invitation.tenant_id,))


def invitation_revoked(invitation, actor: Actor) -> Event:
    """tenancy ends the placeholder's (`user_id`) membership of the inviting tenant."""
    return _event(INVITATION_REVOKED, "users", actor, _invitation(invitation),
                  {"email": invitation.email, "user_id": invitation.user_id}, tenant_ids=(invitation.tenant_id,))


def invitation_expired(invitation, actor: Actor) -> Event:
    return _event(INVITATION_EXPIRED, "users", actor, _invitation(invitation),
                  {"email": invitation.email}, tenant_ids=(invitation.tenant_id,))


def mail_failed(job, actor: Actor, error: str, gave_up: bool) -> Event:
    return _event(MAIL_FAILED, "system", actor, Resource("mail", job.id, job.kind),
                  {"kind": job.kind, "ref_id": job.ref_id, "attempts": job.attempts, "error": error[:300],
                   "gave_up": gave_up}, outcome="failure")


# --- passwords --------------------------------------------------------------

def password_changed(user, actor: Actor, by_admin: bool = False) -> Event:
    return _event(PASSWORD_CHANGED, "auth", actor, _user(user), {"by_admin": by_admin})


def password_reset_requested(user, actor: Actor, by_admin: bool = False) -> Event:
    return _event(PASSWORD_RESET_REQUESTED, "auth", actor, _user(user), {"by_admin": by_admin})


def password_reset_completed(user, actor: Actor) -> Event:
    return _event(PASSWORD_RESET_COMPLETED, "auth", actor, _user(user))


# --- sessions and login protection ------------------------------------------

def login_succeeded(user, actor: Actor, session_id: str, second_factor: str | None = None) -> Event:
    """second_factor: totp or recovery_code when the password step was followed by one."""
    return _event(LOGIN_SUCCEEDED, "auth", actor, _user(user),
                  {"session_id": session_id, "second_factor": second_factor})


def login_failed(user, actor: Actor, login: str, reason: str, via: str = "login") -> Event:
    """via: login, password_change or 2fa_change (a wrong current password counts against the account too)."""
    resource = _user(user) if user else Resource("user", None, login[:64])
    return _event(LOGIN_FAILED, "auth", actor, resource, {"reason": reason, "login": login[:64], "via": via},
                  outcome="failure")


def login_throttled(user, actor: Actor, login: str, scope: str, retry_after: int) -> Event:
    """scope: account or ip."""
    resource = _user(user) if user else Resource("user", None, login[:64])
    return _event(LOGIN_THROTTLED, "auth", actor, resource,
                  {"scope": scope, "login": login[:64], "retry_after": retry_after}, outcome="failure")


def rate_limited(actor: Actor, limit: str, reason: str, retry_after: int, resource: Resource | None = None,
                 user=None, tenant_ids: tuple[str, ...] = ()) -> Event:
    """A request refused (or a mail not sent) by a rate limit (limits.py); `limit` names which.
    About `user` when known, else `resource` (an address, an invitation) or the caller's address."""
    resource = _user(user) if user else resource or Resource("client", None, actor.ip)
    return _event(RATE_LIMITED, "auth", actor, resource,
                  {"limit": limit, "reason": reason, "retry_after": retry_after}, outcome="failure",
                  tenant_ids=tenant_ids)


def account_unlocked(user, actor: Actor) -> Event:
    return _event(ACCOUNT_UNLOCKED, "auth", actor, _user(user))


def logout(user, actor: Actor, session_id: str) -> Event:
    return _event(LOGOUT, "auth", actor, _user(user), {"session_id": session_id})


def sessions_revoked(user, actor: Actor, session_ids: list[str], reason: str) -> Event:
    """reason: user_request, admin, password_changed, refresh_token_reuse, status_changed, ..."""
    return _event(SESSIONS_REVOKED, "auth", actor, _user(user), {"session_ids": session_ids, "reason": reason})


# --- settings ---------------------------------------------------------------

def settings_changed(key: str, actor: Actor, changed_fields: list[str]) -> Event:
    """Names the fields that changed, never their values (the SMTP password is one)."""
    return _event(SETTINGS_CHANGED, "settings", actor, Resource("setting", key, key), {"fields": changed_fields})


# --- two-factor authentication ----------------------------------------------
# The service adds the user's tenants (events.in_tenants), so each tenant's audit view shows them.

def two_factor_enrollment_started(user, actor: Actor, re_enrollment: bool) -> Event:
    return _event(TWO_FACTOR_ENROLLMENT_STARTED, "auth", actor, _user(user), {"re_enrollment": re_enrollment})


def two_factor_enrolled(user, actor: Actor, re_enrollment: bool) -> Event:
    return _event(TWO_FACTOR_ENROLLED, "auth", actor, _user(user), {"re_enrollment": re_enrollment, "method": "totp"})


def two_factor_disabled(user, actor: Actor, by: str) -> Event:
    """by: self (the user, with their password or a code) or admin (a super admin's row action)."""
    return _event(TWO_FACTOR_DISABLED, "auth", actor, _user(user), {"by": by})


def two_factor_challenged(user, actor: Actor, methods) -> Event:
    """The password was right; a login ticket now waits for the second factor."""
    return _event(TWO_FACTOR_CHALLENGED, "auth", actor, _user(user), {"methods": list(methods)})


def two_factor_login_failed(user, actor: Actor, reason: str, method: str | None, failures: int | None = None,
                            locked: bool = False, via: str = "login") -> Event:
    """reason: invalid_code, code_reused, recovery_code_invalid, locked or ticket_invalid; method: totp,
    recovery_code, or None at the password step; via: login (the second sign-in step) or change
    (a code given to change 2FA itself).
    failures: wrong codes in a row so far; locked: the second step is locked now."""
    resource = _user(user) if user else Resource("user", None, None)
    return _event(TWO_FACTOR_LOGIN_FAILED, "auth", actor, resource,
                  {"reason": reason, "method": method, "via": via, "failures": failures, "locked": locked},
                  outcome="failure")


def two_factor_recovery_used(user, actor: Actor, remaining: int) -> Event:
    return _event(TWO_FACTOR_RECOVERY_USED, "auth", actor, _user(user), {"remaining": remaining})


def two_factor_recovery_low(user, actor: Actor, remaining: int) -> Event:
    return _event(TWO_FACTOR_RECOVERY_LOW, "auth", actor, _user(user), {"remaining": remaining})


def two_factor_recovery_regenerated(user, actor: Actor, count: int) -> Event:
    return _event(TWO_FACTOR_RECOVERY_REGENERATED, "auth", actor, _user(user), {"count": count})


def two_factor_required_for_user(user, actor: Actor) -> Event:
    return _event(TWO_FACTOR_REQUIRED_FOR_USER, "auth", actor, _user(user))


def two_factor_requirement_cleared(user, actor: Actor) -> Event:
    return _event(TWO_FACTOR_REQUIREMENT_CLEARED, "auth", actor, _user(user))


def two_factor_policy_changed(actor: Actor, require_for_super_admin: bool) -> Event:
    return _event(TWO_FACTOR_POLICY_CHANGED, "settings", actor, Resource("setting", "2fa_policy", "2fa_policy"),
                  {"require_for_super_admin": require_for_super_admin})


# --- tenants of a session ------------------------------------------------------

def tenant_switched(user, actor: Actor, session_id: str, from_tenant: str, to_tenant: str) -> Event:
    """One session of the user now works in `to_tenant`; both tenants' audit views show it."""
    return _event(TENANT_SWITCHED, "auth", actor, _user(user),
                  {"session_id": session_id, "from": from_tenant, "to": to_tenant},
                  tenant_ids=tuple(dict.fromkeys((from_tenant, to_tenant))))
