"""Password resets: self-service links (services/identity/resets.py stores the requests), setting a
password from a link, and administrators' resets.

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

from eventlet import tpool

from kernel.crypto import token_digest
from kernel.db import aware
from kernel.envelope import Actor, utc_now
from kernel.errors import Conflict, Gone, NotFound, ValidationFailed
from services.identity import domain, events, ratelimit, resets, storage, storage_mail
from services.identity.models import PasswordReset, User
from services.identity.usecases import accounts, platform_settings, signin


def request_password_reset(uow, actor, email):
    """Self-service: mails a reset link to an active account. Says nothing either way, and
    takes the same path for any address: it stores the request (resets.py) and answers;
    the mailer looks the account up afterwards."""
    actor = Actor.from_dict(actor)
    with uow:
        platform_settings.enforce_limits(uow, actor, [("reset_requests_per_ip", actor.ip, 1)])
        resets.accept(uow.session, email, actor, utc_now())
        uow.commit()  # every request counts, whatever the address
    uow.mailer.wake()


def confirm_password_reset(uow, actor, token, password):
    """Sets the password of a reset link's account once; every session of it ends."""
    actor = Actor.from_dict(actor)
    with uow:
        reset = _usable_reset(uow.session, token, utc_now())
        reset_id, user = reset.id, uow.session.get(User, reset.user_id)
        policy = storage.password_policy(uow.session)
    if problems := domain.password_problems(password or "", policy, user.username or ""):
        raise ValidationFailed("The password does not meet the policy.", code="password_policy",
                               details={"password": "; ".join(problems)})
    password_hash = tpool.execute(domain.hash_password, password)
    now = utc_now()
    with uow:
        if not storage_mail.consume_reset(uow.session, reset_id, token_digest(token), now):
            raise _reset_refusal(uow.session.get(PasswordReset, reset_id), now)
        user = uow.session.get(User, user.id)
        user_actor = actor.as_user(user.id, user.username, user.full_name, user.email)
        set_password(uow, user, password_hash, False, user_actor, "password_reset", now)
        ratelimit.emit_about(uow, user, events.password_reset_completed(user, user_actor))
        uow.commit()


def admin_reset_password(uow, actor, user_id, method):
    """method email: a reset link is mailed (None); random: a generated password, returned
    once, that must be changed at the next sign-in. Admins never choose a password."""
    actor = Actor.from_dict(actor)
    accounts.require_authority_over(uow, actor, user_id)
    now = utc_now()
    with uow:
        user = accounts.load_user(uow, user_id)
        if user.status == domain.INVITED:
            raise Conflict("This user has not accepted the invitation yet; resend the invitation instead.",
                           code="user_invited")
        if method == "email":
            platform_settings.require_smtp(uow.session)
            platform_settings.enforce_limits(uow, actor, [("admin_resets_per_user", user.id, 1),
                                                          ("admin_resets_per_admin", actor.user_id, 1)], user=user)
            queue_reset(uow, user, actor, now, by_admin=True)
            uow.commit()
            uow.mailer.wake()
            return None
    if method != "random":
        raise ValidationFailed("Unknown reset method.", details={"method": "must be email or random"})
    password = domain.generate_password()
    password_hash = tpool.execute(domain.hash_password, password)
    with uow:
        user = accounts.load_user(uow, user_id)
        set_password(uow, user, password_hash, True, actor, "password_reset_by_admin", utc_now())
        ratelimit.emit_about(uow, user, events.password_changed(user, actor, by_admin=True))
        uow.commit()
    return {"password": password}


def queue_reset(uow, user, actor, now, by_admin):
    resets.queue_reset(uow, user, actor, now, uow.mailer.reset_ttl, by_admin)


def _usable_reset(session, token, now):
    reset = storage_mail.reset_by_token(session, token_digest(token)) if token else None
    if not reset:
        raise NotFound("This password reset link is not valid.", code="reset_not_found")
    if refusal := _reset_refusal(reset, now):
        raise refusal
    return reset


def _reset_refusal(reset, now):
    if reset.used_at is not None:
        return Gone("This password reset link was already used.", code="reset_used")
    if aware(reset.expires_at) <= now:
        return Gone("This password reset link has expired; ask for a new one.", code="reset_expired")
    return None


def set_password(uow, user, password_hash, must_change, actor, reason, now, keep_session_id=None):
    """New password: earlier reset links and every session of the user (but the one kept) end."""
    user.password_hash, user.must_change_password, user.updated_at = password_hash, must_change, now
    storage_mail.close_open_resets(uow.session, user.id, now)
    signin.revoke_all(uow, user, actor, reason, keep_session_id)
