"""identity's event producers: each builds its payload (contracts.events.identity) from rows.

The event types and payload classes are identity's contract with its consumers
(contracts/events/identity.py); they are re-exported here for identity's own code.
Events describe what changed, never a secret: no password, hash, token or link.
"""
from __future__ import annotations

import dataclasses

from contracts.events import event
from contracts.events.identity import *  # noqa: F403 - the types and payloads, re-exported for identity's code
from contracts.events.identity import (
    AccountUnlocked, InvitationAccepted, InvitationExpired, InvitationRevoked,
    InvitationSent, LoginFailed, LoginSucceeded, LoginThrottled, Logout, MailFailed, PasswordChanged,
    PasswordResetCompleted, PasswordResetRequested, RateLimited, SessionsRevoked, SettingsChanged, SmtpTestSent,
    TenantSwitched, TwoFactorChallenged, TwoFactorDisabled, TwoFactorEnrolled, TwoFactorEnrollmentStarted,
    TwoFactorLoginFailed, TwoFactorPolicyChanged, TwoFactorRecoveryLow, TwoFactorRecoveryRegenerated,
    TwoFactorRecoveryUsed, TwoFactorRequiredForUser, TwoFactorRequirementCleared, UserCreated, UserProfile,
    UserRegistered, UserRemoved, UserStatusChanged, UserUpdated)
from kernel.envelope import Actor, Event, Resource


def _user(user) -> Resource:
    return Resource("user", user.id, user.username or user.email)


def _profile(user) -> dict:
    return UserProfile.of(user).to_data()


def in_tenants(tenant_ids, *events: Event) -> list[Event]:
    """The events, shown in these tenants' audit views too (e.g. every tenant of the user they are about)."""
    return [dataclasses.replace(event, tenant_ids=(*event.tenant_ids, *tenant_ids)) for event in events]


# --- accounts ---------------------------------------------------------------

def user_registered(user, actor: Actor, invitation_id: str | None = None) -> Event:
    """A new account made by its owner: self-registration (pending) or an accepted invitation (active)."""
    return event(UserRegistered(**_profile(user), invitation_id=invitation_id), actor, _user(user))


def user_created(user, actor: Actor, first_admin: bool = False, super_admin: bool = False) -> Event:
    """A new account made by an administrator (or the bootstrap of the first admin). super_admin: made
    a super admin by an operator (`gatehouse admin create`); rbac grants the role on this event."""
    return event(UserCreated(**_profile(user), first_admin=first_admin, super_admin=super_admin), actor, _user(user))


def user_updated(user, actor: Actor, changed: dict) -> Event:
    """changed: field -> {"from", "to"} for profile fields."""
    return event(UserUpdated(changed=changed, profile=UserProfile.of(user)), actor, _user(user))


def user_status_changed(user, actor: Actor, before: str, after: str, reason: str | None = None) -> Event:
    action = "approved" if (before, after) == ("pending", "active") else None
    return event(UserStatusChanged(from_=before, to=after, kind=action or f"{before}_to_{after}", reason=reason,
                                   profile=UserProfile.of(user)), actor, _user(user))


def user_removed(user, actor: Actor) -> Event:
    return event(UserRemoved(**_profile(user)), actor, _user(user))


# --- invitations and mail ---------------------------------------------------

def _invitation(invitation) -> Resource:
    return Resource("invitation", invitation.id, invitation.email)


def invitation_sent(invitation, actor: Actor, resent: bool = False) -> Event:
    return event(InvitationSent(email=invitation.email, role=invitation.role, user_id=invitation.user_id,
                                expires_at=invitation.expires_at.isoformat(), resent=resent),
                 actor, _invitation(invitation), tenant_ids=(invitation.tenant_id,))


def invitation_accepted(invitation, user, actor: Actor) -> Event:
    """rbac assigns `role` in `tenant_id` to `user_id` on this event."""
    return event(InvitationAccepted(email=invitation.email, role=invitation.role, tenant_id=invitation.tenant_id,
                                    user_id=user.id, username=user.username),
                 actor, _invitation(invitation), tenant_ids=(invitation.tenant_id,))


def invitation_revoked(invitation, actor: Actor) -> Event:
    """tenancy ends the placeholder's (`user_id`) membership of the inviting tenant."""
    return event(InvitationRevoked(email=invitation.email, user_id=invitation.user_id), actor,
                 _invitation(invitation), tenant_ids=(invitation.tenant_id,))


def invitation_expired(invitation, actor: Actor) -> Event:
    return event(InvitationExpired(email=invitation.email), actor, _invitation(invitation),
                 tenant_ids=(invitation.tenant_id,))


def mail_failed(job, actor: Actor, error: str, gave_up: bool) -> Event:
    return event(MailFailed(kind=job.kind, ref_id=job.ref_id, attempts=job.attempts, error=error[:300],
                            gave_up=gave_up), actor, Resource("mail", job.id, job.kind), outcome="failure")


# --- passwords --------------------------------------------------------------

def password_changed(user, actor: Actor, by_admin: bool = False) -> Event:
    return event(PasswordChanged(by_admin=by_admin), actor, _user(user))


def password_reset_requested(user, actor: Actor, by_admin: bool = False) -> Event:
    return event(PasswordResetRequested(by_admin=by_admin), actor, _user(user))


def password_reset_completed(user, actor: Actor) -> Event:
    return event(PasswordResetCompleted(), actor, _user(user))


# --- sessions and login protection ------------------------------------------

def login_succeeded(user, actor: Actor, session_id: str, second_factor: str | None = None) -> Event:
    """second_factor: totp or recovery_code when the password step was followed by one."""
    return event(LoginSucceeded(session_id=session_id, second_factor=second_factor), actor, _user(user))


def login_failed(user, actor: Actor, login: str, reason: str, via: str = "login") -> Event:
    """via: login, password_change or 2fa_change (a wrong current password counts against the account too)."""
    resource = _user(user) if user else Resource("user", None, login[:64])
    return event(LoginFailed(reason=reason, login=login[:64], via=via), actor, resource, outcome="failure")


def login_throttled(user, actor: Actor, login: str, scope: str, retry_after: int) -> Event:
    """scope: account or ip."""
    resource = _user(user) if user else Resource("user", None, login[:64])
    return event(LoginThrottled(scope=scope, login=login[:64], retry_after=retry_after), actor, resource,
                 outcome="failure")


def rate_limited(actor: Actor, limit: str, reason: str, retry_after: int, resource: Resource | None = None,
                 user=None, tenant_ids: tuple[str, ...] = ()) -> Event:
    """A request refused (or a mail not sent) by a rate limit (limits.py); `limit` names which.
    About `user` when known, else `resource` (an address, an invitation) or the caller's address."""
    resource = _user(user) if user else resource or Resource("client", None, actor.ip)
    return event(RateLimited(limit=limit, reason=reason, retry_after=retry_after), actor, resource,
                 outcome="failure", tenant_ids=tenant_ids)


def account_unlocked(user, actor: Actor) -> Event:
    return event(AccountUnlocked(), actor, _user(user))


def logout(user, actor: Actor, session_id: str) -> Event:
    return event(Logout(session_id=session_id), actor, _user(user))


def sessions_revoked(user, actor: Actor, session_ids: list[str], reason: str) -> Event:
    """reason: user_request, admin, password_changed, refresh_token_reuse, status_changed, ..."""
    return event(SessionsRevoked(session_ids=session_ids, reason=reason), actor, _user(user))


# --- settings ---------------------------------------------------------------

def settings_changed(key: str, actor: Actor, changed_fields: list[str]) -> Event:
    """Names the fields that changed, never their values (the SMTP password is one)."""
    return event(SettingsChanged(fields=changed_fields), actor, Resource("setting", key, key))


def smtp_test_sent(actor: Actor, to: str, error: str | None) -> Event:
    """The outcome of a test mail; `error` (None: sent) holds no secret (mail.describe_failure)."""
    return event(SmtpTestSent(to=to, sent=error is None, error=error[:300] if error else None), actor,
                 Resource("setting", "smtp", "smtp"), outcome="failure" if error else "success")


# --- two-factor authentication ----------------------------------------------
# The service adds the user's tenants (events.in_tenants), so each tenant's audit view shows them.

def two_factor_enrollment_started(user, actor: Actor, re_enrollment: bool) -> Event:
    return event(TwoFactorEnrollmentStarted(re_enrollment=re_enrollment), actor, _user(user))


def two_factor_enrolled(user, actor: Actor, re_enrollment: bool) -> Event:
    return event(TwoFactorEnrolled(re_enrollment=re_enrollment, method="totp"), actor, _user(user))


def two_factor_disabled(user, actor: Actor, by: str) -> Event:
    """by: self (the user, with their password or a code) or admin (a super admin's row action)."""
    return event(TwoFactorDisabled(by=by), actor, _user(user))


def two_factor_challenged(user, actor: Actor, methods) -> Event:
    """The password was right; a login ticket now waits for the second factor."""
    return event(TwoFactorChallenged(methods=list(methods)), actor, _user(user))


def two_factor_login_failed(user, actor: Actor, reason: str, method: str | None, failures: int | None = None,
                            locked: bool = False, via: str = "login") -> Event:
    """reason: invalid_code, code_reused, recovery_code_invalid, locked or ticket_invalid; method: totp,
    recovery_code, or None at the password step; via: login (the second sign-in step) or change
    (a code given to change 2FA itself).
    failures: wrong codes in a row so far; locked: the second step is locked now."""
    resource = _user(user) if user else Resource("user", None, None)
    return event(TwoFactorLoginFailed(reason=reason, method=method, via=via, failures=failures, locked=locked),
                 actor, resource, outcome="failure")


def two_factor_recovery_used(user, actor: Actor, remaining: int) -> Event:
    return event(TwoFactorRecoveryUsed(remaining=remaining), actor, _user(user))


def two_factor_recovery_low(user, actor: Actor, remaining: int) -> Event:
    return event(TwoFactorRecoveryLow(remaining=remaining), actor, _user(user))


def two_factor_recovery_regenerated(user, actor: Actor, count: int) -> Event:
    return event(TwoFactorRecoveryRegenerated(count=count), actor, _user(user))


def two_factor_required_for_user(user, actor: Actor) -> Event:
    return event(TwoFactorRequiredForUser(), actor, _user(user))


def two_factor_requirement_cleared(user, actor: Actor) -> Event:
    return event(TwoFactorRequirementCleared(), actor, _user(user))


def two_factor_policy_changed(actor: Actor, require_for_super_admin: bool) -> Event:
    return event(TwoFactorPolicyChanged(require_for_super_admin=require_for_super_admin), actor,
                 Resource("setting", "2fa_policy", "2fa_policy"))


# --- tenants of a session ------------------------------------------------------

def tenant_switched(user, actor: Actor, session_id: str, from_tenant: str, to_tenant: str) -> Event:
    """One session of the user now works in `to_tenant`; both tenants' audit views show it."""
    return event(TenantSwitched(session_id=session_id, from_=from_tenant, to=to_tenant), actor, _user(user),
                 tenant_ids=(from_tenant, to_tenant))
