"""Queries of invitations, password resets and the mail queue."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kernel import paging
from services.identity.models import (
    Invitation,
    MailJob,
    PasswordReset,
    ResetRequest,
    User,
)


def email_conflicts(session: Session, emails: list[str]) -> dict[str, str]:
    """Address -> why it cannot be invited (an account, or a pending invitation's placeholder)."""
    taken = {}
    for user in session.scalars(sa.select(User).where(User.email.in_(emails))):
        taken[user.email] = "has a pending invitation" if user.status == "invited" else "is already registered"
    return taken


def invitation_by_token(session: Session, digest: str) -> Invitation | None:
    return session.scalars(sa.select(Invitation).where(Invitation.token_hash == digest)).first()


def reset_by_token(session: Session, digest: str) -> PasswordReset | None:
    return session.scalars(sa.select(PasswordReset).where(PasswordReset.token_hash == digest)).first()


def consume_invitation(session: Session, invitation_id: str, digest: str, now: datetime) -> bool:
    """Marks the invitation accepted if it is still pending under this token; exactly one
    of concurrent acceptances sees True (the row count decides)."""
    result = session.execute(
        sa.update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.status == "pending",
               Invitation.token_hash == digest, Invitation.expires_at > now)
        .values(status="accepted", accepted_at=now))
    return result.rowcount == 1


def consume_reset(session: Session, reset_id: str, digest: str, now: datetime) -> bool:
    """Marks the reset used if it still is unused under this token (single use, atomic)."""
    result = session.execute(
        sa.update(PasswordReset)
        .where(PasswordReset.id == reset_id, PasswordReset.used_at.is_(None),
               PasswordReset.token_hash == digest, PasswordReset.expires_at > now)
        .values(used_at=now))
    return result.rowcount == 1


def close_open_resets(session: Session, user_id: str, now: datetime) -> None:
    """Once a password is set, links sent before stop working (their digests stay: a late
    click is told the link was used)."""
    session.execute(sa.update(PasswordReset)
                    .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
                    .values(used_at=now))


def last_reset_requested_at(session: Session, user_id: str) -> datetime | None:
    return session.scalar(sa.select(sa.func.max(PasswordReset.created_at)).where(PasswordReset.user_id == user_id))


def list_invitations(session: Session, tenant_id: str, status: str | None, limit: int, cursor: str | None):
    """(page of the tenant's invitations newest first, next cursor or None, total matching)."""
    query = sa.select(Invitation).where(Invitation.tenant_id == tenant_id)
    if status:
        query = query.where(Invitation.status == status)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    if cursor:
        created_at, last_id = _decode_cursor(cursor)
        query = query.where(sa.or_(Invitation.created_at < created_at,
                                   sa.and_(Invitation.created_at == created_at, Invitation.id < last_id)))
    rows = list(session.scalars(query.order_by(Invitation.created_at.desc(), Invitation.id.desc()).limit(limit + 1)))
    next_cursor = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor, total


_INVITATION_CURSOR = "invitations"


def _encode_cursor(created_at: datetime, row_id: str) -> str:
    return paging.encode_position(_INVITATION_CURSOR, [created_at.isoformat(), row_id])


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, row_id = paging.position_of(_INVITATION_CURSOR, cursor)
        return datetime.fromisoformat(created_at), str(row_id)
    except (ValueError, TypeError):
        raise paging.refuse_cursor() from None


def cancel_mail_jobs(session: Session, kind: str, ref_id: str, reason: str, now: datetime) -> None:
    """Mails not sent yet for this invitation or reset are not sent any more."""
    session.execute(sa.update(MailJob)
                    .where(MailJob.kind == kind, MailJob.ref_id == ref_id,
                           MailJob.sent_at.is_(None), MailJob.gave_up_at.is_(None))
                    .values(gave_up_at=now, last_error=reason))


def due_reset_requests(session: Session, limit: int) -> list[ResetRequest]:
    """Reset requests to handle, oldest first, locked; other instances skip them (PostgreSQL)."""
    query = (sa.select(ResetRequest).order_by(ResetRequest.created_at).limit(limit)
             .with_for_update(skip_locked=True))
    return list(session.scalars(query))


def _waiting_jobs():
    return sa.and_(MailJob.sent_at.is_(None), MailJob.gave_up_at.is_(None))


def due_mail_jobs(session: Session, now: datetime, limit: int) -> list[MailJob]:
    """Jobs to attempt now, locked; other instances skip them (PostgreSQL; SQLite ignores it)."""
    query = (sa.select(MailJob).where(_waiting_jobs(), MailJob.next_attempt_at <= now)
             .order_by(MailJob.next_attempt_at).limit(limit).with_for_update(skip_locked=True))
    return list(session.scalars(query))


def retry_waiting_mail_now(session: Session, now: datetime) -> int:
    """After the SMTP settings change, waiting mails need not sit out their pause."""
    return session.execute(sa.update(MailJob).where(_waiting_jobs(), MailJob.next_attempt_at > now)
                           .values(next_attempt_at=now)).rowcount


def expired_invitations(session: Session, now: datetime, limit: int) -> list[Invitation]:
    query = (sa.select(Invitation).where(Invitation.status == "pending", Invitation.expires_at <= now)
             .limit(limit).with_for_update(skip_locked=True))
    return list(session.scalars(query))


def delete_placeholder(session: Session, user_id: str | None) -> None:
    """The `invited` user an invitation made; never a real account."""
    if user_id:
        session.execute(sa.delete(User).where(User.id == user_id, User.status == "invited"))
