"""Identity's tables and the queries the service needs; the only module that knows SQL."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from kernel.db import service_base
from services.identity.domain import FIRST_UID_NUMBER


Base = service_base("identity")
metadata = Base.metadata


class User(Base):
    __tablename__ = "identity_users"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    username: Mapped[str] = mapped_column(sa.String(32), unique=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    first_name: Mapped[str] = mapped_column(sa.String(64))
    last_name: Mapped[str] = mapped_column(sa.String(64))
    company: Mapped[str] = mapped_column(sa.String(128), default="")
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    uid_number: Mapped[int] = mapped_column(sa.Integer, unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    is_first_admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class LoginSession(Base):
    __tablename__ = "identity_sessions"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class UidCounter(Base):
    """Next Unix uidNumber; a counter, not max()+1, so a number is never handed out twice."""

    __tablename__ = "identity_uid_counter"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    next_uid: Mapped[int] = mapped_column(sa.Integer)


def allocate_uid_number(session: Session) -> int:
    counter = sa.update(UidCounter).where(UidCounter.id == 1).values(next_uid=UidCounter.next_uid + 1)
    allocated = session.execute(counter.returning(UidCounter.next_uid)).scalar_one_or_none()
    if allocated is None:
        try:
            with session.begin_nested():
                session.add(UidCounter(id=1, next_uid=FIRST_UID_NUMBER + 1))
            return FIRST_UID_NUMBER
        except IntegrityError:  # a concurrent transaction created the counter first
            allocated = session.execute(counter.returning(UidCounter.next_uid)).scalar_one()
    return allocated - 1


def find_by_login(session: Session, login: str) -> User | None:
    login = (login or "").strip().lower()
    return session.scalars(sa.select(User).where(sa.or_(User.username == login, User.email == login))).first()


def conflicts(session: Session, username: str, email: str) -> dict[str, str]:
    taken = {}
    if session.scalar(sa.select(sa.func.count()).where(User.username == username)):
        taken["username"] = "is already taken"
    if session.scalar(sa.select(sa.func.count()).where(User.email == email)):
        taken["email"] = "is already registered"
    return taken


def first_admin(session: Session) -> User | None:
    return session.scalars(sa.select(User).where(User.is_first_admin.is_(True))).first()


def public_user(user: User) -> dict:
    return {
        "id": user.id, "username": user.username, "email": user.email,
        "first_name": user.first_name, "last_name": user.last_name, "full_name": user.full_name,
        "company": user.company, "status": user.status, "uid_number": user.uid_number,
        "is_first_admin": user.is_first_admin, "created_at": iso(user.created_at),
        "last_login_at": iso(user.last_login_at),
    }


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; we only store UTC
        return moment.isoformat(timespec="seconds") + "Z"
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
