"""Queries of sign-in: login sessions and refresh tokens, the sign-in throttle, and the
second factor's recovery codes, used steps and login tickets."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.identity.models import (
    LoginSession,
    LoginThrottle,
    LoginTicket,
    RecoveryCode,
    RefreshToken,
    User,
)

_THROTTLE_TABLE = LoginThrottle.__table__


_THROTTLES = (sa.select(_THROTTLE_TABLE.c.key, _THROTTLE_TABLE.c.failures, _THROTTLE_TABLE.c.first_failure_at,
                        _THROTTLE_TABLE.c.locked_until)
              .where(_THROTTLE_TABLE.c.key.in_(sa.bindparam("keys", expanding=True))).with_for_update())


_CLEAR_THROTTLE = sa.delete(_THROTTLE_TABLE).where(_THROTTLE_TABLE.c.key == sa.bindparam("throttle_key"))


def throttles(session: Session, keys: list[str]) -> dict:
    """The rows (key, failures, first_failure_at, locked_until) of those of the keys that have one
    (most have none), by key, locked for this transaction where the database can (PostgreSQL):
    one Core query for all of them."""
    return {row.key: row for row in session.execute(_THROTTLES, {"keys": keys})}


def throttle(session: Session, key: str) -> LoginThrottle | None:
    """The key's row, locked for this transaction where the database can (PostgreSQL)."""
    return session.scalars(sa.select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()).first()


def save_throttle(session: Session, key: str, state) -> None:
    """Store a sessions.Throttle for the key (insert or update)."""
    row = throttle(session, key)
    if row is None:
        try:
            with session.begin_nested():
                session.add(LoginThrottle(key=key, failures=state.failures, first_failure_at=state.first_failure_at,
                                          locked_until=state.locked_until))
            return
        except IntegrityError:  # a concurrent failure created it first
            row = throttle(session, key)
    row.failures, row.first_failure_at, row.locked_until = state.failures, state.first_failure_at, state.locked_until


def clear_throttle(session: Session, key: str) -> bool:
    return session.execute(_CLEAR_THROTTLE, {"throttle_key": key}).rowcount > 0


_INSERT_SESSION = sa.insert(LoginSession.__table__)


_INSERT_REFRESH_TOKEN = sa.insert(RefreshToken.__table__)


def add_login_session(session: Session, user_id: str, now: datetime, ip: str | None, user_agent: str,
                      expires_at: datetime, tenant_id: str) -> str:
    """A new session; returns its id. A Core insert: sign-in needs no ORM object (and no flush) for it."""
    session_id = str(uuid.uuid4())
    session.execute(_INSERT_SESSION, {"id": session_id, "user_id": user_id, "created_at": now, "last_used_at": now,
                                      "ip": ip, "user_agent": user_agent, "expires_at": expires_at,
                                      "tenant_id": tenant_id})
    return session_id


def add_refresh_token(session: Session, session_id: str, digest: str, now: datetime) -> None:
    session.execute(_INSERT_REFRESH_TOKEN, {"token_hash": digest, "session_id": session_id, "issued_at": now})


def refresh_token(session: Session, digest: str) -> RefreshToken | None:
    return session.get(RefreshToken, digest)


def use_refresh_token(session: Session, digest: str, now: datetime) -> bool:
    """Marks the token used; False when it already was (one of two concurrent uses loses)."""
    used = sa.update(RefreshToken).where(RefreshToken.token_hash == digest, RefreshToken.used_at.is_(None))
    return session.execute(used.values(used_at=now)).rowcount == 1


def live_sessions(session: Session, user_id: str, now: datetime, offset: int = 0,
                  limit: int | None = None) -> tuple[list[LoginSession], int]:
    """A user's sessions that are neither revoked nor expired, newest first, and their count."""
    live = sa.and_(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None),
                   sa.or_(LoginSession.expires_at.is_(None), LoginSession.expires_at > now))
    total = session.execute(sa.select(sa.func.count()).select_from(LoginSession).where(live)).scalar_one()
    query = (sa.select(LoginSession).where(live)
             .order_by(LoginSession.created_at.desc(), LoginSession.id).offset(offset))
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query)), total


def revoke(sessions: list[LoginSession], now: datetime, reason: str) -> list[str]:
    for login_session in sessions:
        login_session.revoked_at, login_session.revoked_reason = now, reason
    return [login_session.id for login_session in sessions]


def recovery_codes_left(session: Session, user_id: str) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)))


def replace_recovery_codes(session: Session, user_id: str, digests: list[str], now: datetime) -> None:
    """The user's recovery codes are these from now on; every earlier one is dead."""
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all(RecoveryCode(user_id=user_id, digest=digest, created_at=now) for digest in digests)


def use_recovery_code(session: Session, user_id: str, digest: str, now: datetime) -> bool:
    """Spends the user's unused code with this digest; False when there is none (or a concurrent use won)."""
    spend = (sa.update(RecoveryCode)
             .where(RecoveryCode.user_id == user_id, RecoveryCode.digest == digest, RecoveryCode.used_at.is_(None))
             .values(used_at=now))
    return session.execute(spend).rowcount == 1


def remember_step(session: Session, user_id: str, step: int) -> bool:
    """Records the step of an accepted TOTP code; False when this step (or a later one) was
    already used: of two concurrent uses of one code, one loses."""
    newer = sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step)
    return session.execute(sa.update(User).where(User.id == user_id, newer)
                           .values(totp_last_step=step)).rowcount == 1


def add_login_ticket(session: Session, user_id: str, digest: str, now: datetime, expires_at: datetime) -> None:
    """A new ticket; the user's used and expired ones go (they can never be used again)."""
    session.execute(sa.delete(LoginTicket).where(
        LoginTicket.user_id == user_id, sa.or_(LoginTicket.used_at.is_not(None), LoginTicket.expires_at <= now)))
    session.add(LoginTicket(digest=digest, user_id=user_id, created_at=now, expires_at=expires_at))


def login_ticket(session: Session, digest: str) -> LoginTicket | None:
    return session.get(LoginTicket, digest)


def use_login_ticket(session: Session, digest: str, now: datetime) -> bool:
    """Marks the ticket used; False when it already was (one of two concurrent uses loses)."""
    used = sa.update(LoginTicket).where(LoginTicket.digest == digest, LoginTicket.used_at.is_(None))
    return session.execute(used.values(used_at=now)).rowcount == 1


def remove_two_factor(session: Session, user: User) -> None:
    """TOTP and every recovery code and pending login ticket of the user go; the requirement stays."""
    user.totp_enrolled, user.totp_secret, user.totp_enrolled_at, user.totp_last_step = False, None, None, None
    user.totp_pending_secret, user.totp_pending_at = None, None
    user.second_factor_failures, user.second_factor_locked_at = 0, None
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.execute(sa.delete(LoginTicket).where(LoginTicket.user_id == user.id))
