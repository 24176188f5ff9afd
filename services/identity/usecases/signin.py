"""Sessions and sign-in: passwords, refresh tokens, the session's tenant, the sign-in throttle
(rules in sessions.py), password changes and account unlocks.

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

from eventlet import tpool

from kernel import paging
from kernel.crypto import new_token, token_digest
from kernel.envelope import Actor, utc_now
from kernel.errors import (
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from services.identity import (
    domain,
    events,
    ratelimit,
    sessions,
    storage,
    storage_sessions,
    storage_tenants,
    views,
)
from services.identity.models import LoginSession, User
from services.identity.usecases import accounts, password_resets, second_factor

INVALID_CREDENTIALS = "Invalid username or password."
NOT_ACTIVE = {
    domain.PENDING: "This account is waiting for an administrator's approval.",
    domain.INVITED: "This account has not accepted its invitation yet.",
    domain.SUSPENDED: "This account is disabled.",
}


def login(uow, actor, login, password, user_agent=""):
    """Check a password; returns the user, a new session id and its first refresh token,
    or, for an account with 2FA, only a login ticket for the second step (login_second_factor).

    An unknown user costs one hash verification too, and a locked account is
    answered exactly like a wrong password, so neither timing nor answer tells them apart.
    """
    actor = Actor.from_dict(actor)
    rules, now = throttle_rules(uow), utc_now()
    with uow:
        user = storage.find_by_login(uow.session, login)
        known_hash = user.password_hash if user else None
        account = sessions.account_key(user.id) if user else sessions.unknown_login_key(login)
        address = sessions.ip_key(actor.ip)
        throttled = _throttles(uow, address, account)
        ip_wait = sessions.retry_after(throttled.get(address), now)
        account_wait = sessions.retry_after(throttled.get(account), now)
        if ip_wait:
            ratelimit.emit_about(uow, user, events.login_throttled(user, actor, domain.loggable_login(login), "ip",
                                                                   ip_wait))
            uow.commit()
            raise TooManyRequests("Too many failed sign-ins from this address; try again later.",
                                  code="too_many_attempts", details={"retry_after": ip_wait},
                                  retry_after=ip_wait)
    password_ok = tpool.execute(domain.verify_password, known_hash or domain.dummy_hash(), password or "")
    password_ok = password_ok and known_hash is not None
    refusal = "account_locked" if account_wait else domain.login_refusal(user.status if user else None,
                                                                         password_ok)
    if refusal:
        _refuse_login(uow, user, actor, login, refusal, password_ok, account, account_wait, rules)
    new_hash = tpool.execute(domain.hash_password, password) if domain.needs_rehash(known_hash) else None
    with uow:
        user = uow.session.get(User, user.id)
        if user is None or user.status != domain.ACTIVE:  # changed while the hash was checked
            raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
        now = utc_now()
        if new_hash:
            user.password_hash = new_hash
        storage_sessions.clear_throttle(uow.session, account)  # the address keeps its count
        if user.totp_enrolled:
            return second_factor.challenge_second_factor(uow, user, actor, now)
        signed_in = open_session(uow, user, actor, user_agent, now)
        uow.commit()
        return signed_in


def open_session(uow, user, actor, user_agent, now, second_factor=None) -> dict:
    """A new session of a user who passed every step of sign-in; the caller commits."""
    user.last_login_at = now
    # Sign-in is the hot path: the session's tenant and the event's tenants come from one query,
    # the session and its token are Core inserts (no ORM objects to flush).
    tenant_id, user_tenant_ids = storage_tenants.sign_in_tenants(uow.session, user.id)
    session_id = storage_sessions.add_login_session(uow.session, user.id, now, actor.ip,
                                                    sessions.user_agent(user_agent),
                                                    sessions.session_expiry(now, refresh_ttl(uow)), tenant_id)
    refresh_token = issue_refresh_token(uow, session_id, now)
    uow.emit(*events.in_tenants(user_tenant_ids, events.login_succeeded(
        user, actor.as_user(user.id, user.username, user.full_name, user.email), session_id, second_factor)))
    return {"user": views.signed_in_user(uow.session, user), "session_id": session_id,
            "refresh_token": refresh_token, "tenant_id": tenant_id}


def _refuse_login(uow, user, actor, login, refusal, password_ok, account, account_wait, rules):
    """Record the refused attempt (audit, throttle counters) and raise its answer."""
    shown = domain.loggable_login(login)
    with uow:
        refused = [events.login_failed(user, actor, shown, refusal)]
        if account_wait:
            refused.append(events.login_throttled(user, actor, shown, "account", account_wait))
        ratelimit.emit_about(uow, user, *refused)
        if sessions.counts_as_failure(refusal, password_ok):
            count_failure(uow, account, rules.max_failures, rules)
            count_failure(uow, sessions.ip_key(actor.ip), rules.ip_max_failures, rules)
        uow.commit()
    if refusal.startswith("status_"):
        raise Unauthorized(NOT_ACTIVE[user.status], code="account_not_active")
    raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")


def refresh(uow, actor, refresh_token):
    """Trade a refresh token for a new one (the old one is spent); returns the user and session id.

    A spent token presented again means two parties hold it: the whole session is revoked.
    """
    actor = Actor.from_dict(actor)
    digest = token_digest(refresh_token)
    with uow:
        now = utc_now()
        token = storage_sessions.refresh_token(uow.session, digest)
        session, user = live_session(uow, token and token.session_id, now)
        if not user:
            raise Unauthorized("The refresh token is not valid; sign in again.", code="refresh_token_invalid")
        if not storage_sessions.use_refresh_token(uow.session, digest, now):
            revoked = storage_sessions.revoke([session], now, sessions.SESSION_REUSE)
            ratelimit.emit_about(uow, user, events.sessions_revoked(
                user, actor.as_user(user.id, user.username, user.full_name, user.email), revoked,
                sessions.SESSION_REUSE))
            uow.commit()
            raise Unauthorized("The refresh token was already used; the session is closed for safety.",
                               code="refresh_token_reused")
        session.last_used_at = now
        session.expires_at = sessions.session_expiry(now, refresh_ttl(uow))
        new_token = issue_refresh_token(uow, session.id, now)
        uow.commit()
        return {"user": views.signed_in_user(uow.session, user), "session_id": session.id,
                "refresh_token": new_token}


def session_user(uow, session_id):
    """The user behind a live session (with what 2FA owes: totp_enrollment_required); Unauthorized once
    it is revoked or expired or the user is not active."""
    with uow:
        session, user = live_session(uow, session_id, utc_now())
        if not user:
            raise Unauthorized("The session is no longer valid.", code="session_invalid")
        return session_answer(uow, session, user)


def session_answer(uow, session, user) -> dict:
    """The user with the session's tenant (`session_tenant_id`) and their membership there:
    `tenant_membership` "confirmed" (tenancy told), "provisional" (identity made the user there
    moments ago) or None (not a member: the gateway refuses unless a super admin)."""
    row = storage_tenants.membership(uow.session, user.id, session.tenant_id)
    state = None if row is None else ("confirmed" if row.confirmed else "provisional")
    return {**views.signed_in_user(uow.session, user), "session_tenant_id": session.tenant_id,
            "tenant_membership": state}


def switch_tenant(uow, actor, session_id, tenant_id):
    """This session (only) works in `tenant_id` from now on; the gateway checked the user may.
    Returns what session_user answers."""
    actor = Actor.from_dict(actor)
    with uow:
        session, user = live_session(uow, session_id, utc_now())
        if not user:
            raise Unauthorized("The session is no longer valid.", code="session_invalid")
        before = session.tenant_id
        if before != tenant_id:
            session.tenant_id = tenant_id
            uow.emit(events.tenant_switched(user, actor, session.id, before, tenant_id))
            uow.commit()
        return session_answer(uow, session, user)


def logout(uow, actor, session_id):
    actor = Actor.from_dict(actor)
    with uow:
        session = uow.session.get(LoginSession, session_id)
        user = session and uow.session.get(User, session.user_id)
        if user and session.revoked_at is None:
            storage_sessions.revoke([session], utc_now(), "logout")
            ratelimit.emit_about(uow, user, events.logout(user, actor, session.id))
            uow.commit()


def list_sessions(uow, actor, user_id, current_session_id=None, limit=50, cursor=None):
    """A user's live sessions, newest first; `cursor` is the previous page's next_cursor. Another
    user's (their addresses and devices) only within the actor's authority over them."""
    actor = Actor.from_dict(actor)
    if actor.user_id != user_id:
        accounts.require_authority_over(uow, actor, user_id)
    offset = paging.offset_of(cursor)
    with uow:
        accounts.load_user(uow, user_id)
        rows, total = storage_sessions.live_sessions(uow.session, user_id, utc_now(), offset, limit)
    return paging.page_answer([views.public_session(row, current_session_id) for row in rows], offset, total)


def revoke_session(uow, actor, user_id, session_id):
    """Ends one of the user's sessions; NotFound for a session of someone else."""
    actor = Actor.from_dict(actor)
    if actor.user_id != user_id:
        accounts.require_authority_over(uow, actor, user_id)
    with uow:
        session = uow.session.get(LoginSession, session_id)
        if session is None or session.user_id != user_id:
            raise NotFound("No such session.", details={"session_id": session_id})
        if session.revoked_at is None:
            user = accounts.load_user(uow, user_id)
            revoked = storage_sessions.revoke([session], utc_now(), "user_request")
            ratelimit.emit_about(uow, user, events.sessions_revoked(user, actor, revoked, "user_request"))
            uow.commit()


def revoke_sessions(uow, actor, user_id, reason, keep_session_id=None):
    """Ends every live session of the user except `keep_session_id`; returns the ids ended."""
    actor = Actor.from_dict(actor)
    if actor.user_id != user_id:
        accounts.require_authority_over(uow, actor, user_id)
    with uow:
        user = accounts.load_user(uow, user_id)
        revoked = revoke_all(uow, user, actor, reason, keep_session_id)
        if not revoked and reason == "admin":  # an administrator's action is recorded all the same
            ratelimit.emit_about(uow, user, events.sessions_revoked(user, actor, [], reason))
        uow.commit()
    return revoked


def change_password(uow, actor, session_id, current_password, new_password):
    """The signed-in user's own change: the current password is checked (and throttled
    like a login), then every other session of the user ends."""
    actor = Actor.from_dict(actor)
    with uow:
        user = signed_in_user(uow, session_id, utc_now())
        policy = storage.password_policy(uow.session)
        known_hash = user.password_hash
    if problems := domain.password_problems(new_password or "", policy, user.username or ""):
        raise ValidationFailed("The new password is not acceptable.",
                               details={"new_password": "; ".join(problems)})
    check_current_password(uow, actor, user, current_password, "current_password", via="password_change")
    new_hash = tpool.execute(domain.hash_password, new_password)
    with uow:
        user = uow.session.get(User, user.id)
        if user is None or user.password_hash != known_hash:  # removed, or changed meanwhile
            raise Conflict("The password was changed meanwhile; sign in again.", code="password_changed")
        storage_sessions.clear_throttle(uow.session, sessions.account_key(user.id))
        ratelimit.emit_about(uow, user, events.password_changed(user, actor))
        password_resets.set_password(uow, user, new_hash, False, actor, "password_changed", utc_now(),
                                     keep_session_id=session_id)
        uow.commit()


def check_current_password(uow, actor, user, password, field, via):
    """The signed-in user's own password, checked like a sign-in: a wrong one counts toward
    the account's lock, and a locked account is refused. Raises Unauthorized naming `field`."""
    rules, now = throttle_rules(uow), utc_now()
    account = sessions.account_key(user.id)
    with uow:
        account_wait = sessions.retry_after(throttle(uow, account), now)
    known_hash = user.password_hash
    password_ok = tpool.execute(domain.verify_password, known_hash or domain.dummy_hash(), password or "")
    password_ok = password_ok and known_hash is not None
    if account_wait or not password_ok:
        refusal = "account_locked" if account_wait else "bad_password"
        login = user.username or user.email
        with uow:
            refused = [events.login_failed(user, actor, login, refusal, via=via)]
            if account_wait:
                refused.append(events.login_throttled(user, actor, login, "account", account_wait))
            ratelimit.emit_about(uow, user, *refused)
            if not password_ok:
                count_failure(uow, account, rules.max_failures, rules)
            uow.commit()
        raise Unauthorized("The current password is not correct.", code="invalid_credentials",
                           details={field: "is not correct"})


def unlock_account(uow, actor, user_id):
    """Lifts an account's lock after failed sign-ins (the client addresses keep theirs),
    and the lock of its second sign-in step after wrong 2FA codes."""
    actor = Actor.from_dict(actor)
    accounts.require_authority_over(uow, actor, user_id)
    with uow:
        user = accounts.load_user(uow, user_id, for_update=True)
        storage_sessions.clear_throttle(uow.session, sessions.account_key(user.id))
        user.second_factor_failures, user.second_factor_locked_at = 0, None
        ratelimit.emit_about(uow, user, events.account_unlocked(user, actor))
        uow.commit()


def live_session(uow, session_id, now) -> tuple[LoginSession | None, User | None]:
    """The session and its user while both may act (not revoked or expired, user active); else (None, None)."""
    session = session_id and uow.session.get(LoginSession, session_id)
    user = session and uow.session.get(User, session.user_id)
    if not user or sessions.session_problem(session.revoked_at, session.expires_at, user.status, now):
        return None, None
    return session, user


def signed_in_user(uow, session_id, now) -> User:
    _, user = live_session(uow, session_id, now)
    if not user:
        raise Unauthorized("The session is no longer valid.", code="session_invalid")
    return user


def revoke_all(uow, user, actor, reason, keep_session_id=None) -> list[str]:
    live, _ = storage_sessions.live_sessions(uow.session, user.id, utc_now())
    revoked = storage_sessions.revoke([s for s in live if s.id != keep_session_id], utc_now(), reason)
    if revoked:
        ratelimit.emit_about(uow, user, events.sessions_revoked(user, actor, revoked, reason))
    return revoked


def issue_refresh_token(uow, session_id, now) -> str:
    token = new_token()
    storage_sessions.add_refresh_token(uow.session, session_id, token_digest(token), now)
    return token


def throttle(uow, key):
    row = storage_sessions.throttle(uow.session, key)
    return row and _throttle_state(row)


def _throttles(uow, *keys) -> dict[str, sessions.Throttle]:
    """The state of each of the keys that has failures on record (one query)."""
    return {key: _throttle_state(row) for key, row in storage_sessions.throttles(uow.session, list(keys)).items()}


def _throttle_state(row) -> sessions.Throttle:
    return sessions.Throttle(row.failures, row.first_failure_at, row.locked_until)


def count_failure(uow, key, limit, rules):
    state = sessions.after_failure(throttle(uow, key), utc_now(), limit, rules)
    storage_sessions.save_throttle(uow.session, key, state)


def throttle_rules(uow) -> sessions.ThrottleRules:
    return sessions.ThrottleRules.from_config(uow.config["GATEHOUSE"])


def refresh_ttl(uow) -> int:
    return uow.config["GATEHOUSE"].integer("GATEHOUSE_REFRESH_TOKEN_TTL")
