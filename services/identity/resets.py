"""Self-service password reset requests, answered before the account is looked up.

`POST /api/v1/auth/password-reset` answers the same body for any address; it must also take
the same time, or the answer's timing tells which addresses have accounts. So the RPC only
counts the client's request (the per-IP limit) and stores it (`accept`: the same statements
whatever the address), and the mailer's loop handles stored requests afterwards (`handle_due`):
looks the account up, applies the per-account limit and pause, queues the mail and audits it.
The request's row is deleted in the same transaction, so a crash in between only delays it.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from kernel.envelope import Actor
from services.identity import domain, events, limits, mail, ratelimit, storage, storage_mail
from services.identity.models import MailJob, PasswordReset, ResetRequest

log = logging.getLogger(__name__)

BATCH = 50
EMAIL_MAX = 254


def accept(session, email, actor: Actor, now: datetime) -> None:
    """Stores the request as given: nothing about the address is checked here."""
    text = email if isinstance(email, str) else ""
    session.add(ResetRequest(email=text[:EMAIL_MAX], actor=json.dumps(actor.__dict__), created_at=now))


def queue_reset(uow, user, actor: Actor, now: datetime, reset_ttl: timedelta, by_admin: bool) -> None:
    """A reset link for `user`: its row, its mail job (the mailer mints the token) and the audit event."""
    reset = PasswordReset(user_id=user.id, requested_by=actor.user_id, created_at=now, expires_at=now + reset_ttl)
    uow.session.add(reset)
    uow.session.flush()
    uow.session.add(MailJob(kind=mail.PASSWORD_RESET, ref_id=reset.id, recipient=user.email, attempts=0,
                            next_attempt_at=now, created_at=now))
    ratelimit.emit_about(uow, user, events.password_reset_requested(user, actor, by_admin=by_admin))


def handle_due(db, config, reset_ttl: timedelta, now: datetime) -> int:
    """Handles stored requests, one transaction each (the request's row goes in it); returns how
    many mails were queued."""
    queued = 0
    while True:
        with db.unit_of_work() as uow:
            [request] = storage_mail.due_reset_requests(uow.session, 1) or [None]
            if request is None:
                return queued
            request_id, address, actor = request.id, request.email, Actor.from_dict(json.loads(request.actor))
            if handle_one(uow, config, address, actor, reset_ttl, now):
                queued += 1
            # Over a limit, handle_one's transaction ended (the refusal is audited): this is a new one.
            uow.session.execute(sa.delete(ResetRequest).where(ResetRequest.id == request_id))
            uow.commit()


def handle_one(uow, config, email: str, actor: Actor, reset_ttl: timedelta, now: datetime) -> bool:
    """The per-account part of a request, in `uow` (holding no write yet): a mail to an active
    account, unless over its limit or within its pause (audited, no mail)."""
    user = storage.user_by_email(uow.session, email)
    if not user or user.status != domain.ACTIVE:
        return False
    rules = limits.limits_from_config(config)
    if ratelimit.over_limit(uow, rules, actor, [("reset_mails_per_account", user.id, 1)], user=user):
        return False  # over_limit rolled back, audited the refusal and committed
    if not mail.reset_mail_allowed(storage_mail.last_reset_requested_at(uow.session, user.id), now):
        return False
    queue_reset(uow, user, actor, now, reset_ttl, by_admin=False)
    return True
