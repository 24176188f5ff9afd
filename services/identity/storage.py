"""Identity's tables and the queries the service needs; the only module that knows SQL."""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from kernel import paging
from kernel.db import iso, service_base  # noqa: F401  (iso: storage.iso for the service)
from kernel.envelope import utc_now
from services.identity import twofactor
from services.identity.domain import FIRST_UID_NUMBER, PasswordPolicy
from contracts.rbac import SUPER_ADMIN


Base = service_base("identity")
metadata = Base.metadata


class User(Base):
    """An account. Invited users exist before they choose a username (status `invited`)."""

    __tablename__ = "identity_users"
    # The user list walks these in its sort's order from where the last page ended (key, id);
    # the id also spares sorting runs of equal keys (a status, a name shared by many).
    __table_args__ = (
        sa.Index("ix_identity_users_sort_name", "first_name", "last_name", "id"),
        sa.Index("ix_identity_users_sort_status", "status", "id"),
        sa.Index("ix_identity_users_sort_totp", "totp_enrolled", "id"),
        sa.Index("ix_identity_users_sort_created_at", "created_at", "id"),
        sa.Index("ix_identity_users_sort_last_login_at", "last_login_at", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    username: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    first_name: Mapped[str] = mapped_column(sa.String(64), default="")
    last_name: Mapped[str] = mapped_column(sa.String(64), default="")
    company: Mapped[str] = mapped_column(sa.String(128), default="")
    status: Mapped[str] = mapped_column(sa.String(16))
    # Allocated when the account becomes real (registration, creation, acceptance).
    uid_number: Mapped[int | None] = mapped_column(sa.Integer, unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    must_change_password: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    is_first_admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # 2FA. totp_required: an administrator requires it (it stands after enrollment, until cancelled).
    totp_enrolled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    totp_required: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    totp_secret: Mapped[str | None] = mapped_column(sa.Text)  # sealed (kernel.crypto.SecretBox)
    totp_pending_secret: Mapped[str | None] = mapped_column(sa.Text)  # sealed; enrollment started, not confirmed
    totp_pending_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # RFC 6238 time step of the last accepted code: a code of this step or earlier is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(sa.Integer)
    second_factor_failures: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    second_factor_locked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Lowercased "username first last email": one LIKE serves the user list's search.
    search_text: Mapped[str] = mapped_column(sa.String(512), default="")
    # Bumped on every change of the profile or status: the ETag of If-Match updates.
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def refresh_search_text(self) -> None:
        self.search_text = " ".join(
            part for part in (self.username, self.first_name, self.last_name, self.email) if part).lower()


class UserRole(Base):
    """Read model of rbac's assignments (fed by rbac events): the user list sorts and
    filters by role in the same query as everything else."""

    __tablename__ = "identity_user_roles"
    __table_args__ = (sa.Index("ix_identity_user_roles_tenant_role", "tenant_id", "role", "user_id"),)

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    role: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # occurred_at of the rbac event applied last: a late, older event changes nothing.
    as_of: Mapped[str] = mapped_column(sa.String(32))


class Membership(Base):
    """Read model of tenancy's memberships (fed by its events): the user list joins it to show a
    tenant's members only, and sign-in picks the session's tenant from it.

    Identity writes a new user's first membership itself in the creating transaction
    (`confirmed` false) so the user shows at once; tenancy's event confirms it. A row whose
    membership ended stays as a tombstone (`member` false) so a late, older event changes nothing.
    """

    __tablename__ = "identity_memberships"
    __table_args__ = (sa.Index("ix_identity_memberships_tenant_user", "tenant_id", "member", "user_id"),)

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    member: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    confirmed: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # occurred_at of the event applied last (or the creation's time): older events change nothing.
    as_of: Mapped[str] = mapped_column(sa.String(32))


class RecoveryCode(Base):
    """A 2FA recovery code, by keyed digest only; works once (used_at)."""

    __tablename__ = "identity_recovery_codes"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginTicket(Base):
    """What the password step of a 2FA account answers instead of a session: single use,
    short-lived, stored by digest; the second step trades it (and a code) for a session."""

    __tablename__ = "identity_login_tickets"

    digest: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginSession(Base):
    """A signed-in device: access tokens name it, refresh tokens renew it."""

    __tablename__ = "identity_sessions"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str] = mapped_column(sa.String(256), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(64))
    # The session's active tenant: every request of it is confined there (chosen at sign-in, switched).
    tenant_id: Mapped[str] = mapped_column(sa.String(36), default="default", server_default="default")


class RefreshToken(Base):
    """Every refresh token a session was given, by hash: a used one presented again
    means it was stolen, and the whole session is revoked."""

    __tablename__ = "identity_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_sessions.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginThrottle(Base):
    """Failed password attempts per key (`account:<id>`, `login:<name>`, `ip:<addr>`)."""

    __tablename__ = "identity_login_throttle"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class RateCounter(Base):
    """How many units (requests, mails) one key used in one fixed window (limits.py)."""

    __tablename__ = "identity_rate_counters"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    count: Mapped[int] = mapped_column(sa.Integer, default=0)


class Invitation(Base):
    __tablename__ = "identity_invitations"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    email: Mapped[str] = mapped_column(sa.String(254), index=True)
    # The placeholder user (status `invited`) that shows in the user list until acceptance.
    user_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    role: Mapped[str] = mapped_column(sa.String(64))
    tenant_id: Mapped[str] = mapped_column(sa.String(36))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)  # pending accepted revoked expired
    # sha256 of the single-use token; minted when the mail is handed to SMTP, never stored in clear.
    token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    invited_by: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PasswordReset(Base):
    __tablename__ = "identity_password_resets"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    requested_by: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class ResetRequest(Base):
    """A self-service password reset request, as accepted: the address and who asked. The request
    answers once this row is committed, the same for any address; the mailer looks the account up
    afterwards (services/identity/resets.py), so no answer's timing tells whether it exists."""

    __tablename__ = "identity_reset_requests"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    email: Mapped[str] = mapped_column(sa.String(254))
    actor: Mapped[str] = mapped_column(sa.Text)  # JSON of kernel.envelope.Actor (IP, request id) for the audit
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)


class MailJob(Base):
    """A mail to deliver, retried until SMTP takes it; survives restarts because it is a row.

    It holds no secret: the link's token is minted at delivery time (see mailer.py).
    """

    __tablename__ = "identity_mail_jobs"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    kind: Mapped[str] = mapped_column(sa.String(32))  # invitation, password_reset
    ref_id: Mapped[str] = mapped_column(sa.String(36))  # the invitation or password reset
    recipient: Mapped[str] = mapped_column(sa.String(254))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), index=True)
    gave_up_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Setting(Base):
    """Admin-editable settings (smtp, password_policy) as JSON; secrets inside are encrypted."""

    __tablename__ = "identity_settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(sa.String(36))


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


# Statements of sign-in, built once: building one and computing its cache key costs more CPU than
# running it on SQLite.
_USER_BY_LOGIN = sa.select(User).where(sa.or_(User.username == sa.bindparam("login"),
                                              User.email == sa.bindparam("login")))


def find_by_login(session: Session, login: str) -> User | None:
    return session.scalars(_USER_BY_LOGIN, {"login": (login or "").strip().lower()}).first()


def conflicts(session: Session, username: str | None, email: str | None, excluding: str | None = None) -> dict[str, str]:
    """Which of username/email another account (not `excluding`) already holds; None is not checked."""
    taken = {}
    others = sa.select(sa.func.count()).select_from(User)
    if excluding:
        others = others.where(User.id != excluding)
    if username is not None and session.scalar(others.where(User.username == username)):
        taken["username"] = "is already taken"
    if email is not None and session.scalar(others.where(User.email == email)):
        taken["email"] = "is already registered"
    return taken


def first_admin(session: Session) -> User | None:
    return session.scalars(sa.select(User).where(User.is_first_admin.is_(True))).first()


def read_setting(session: Session, key: str) -> dict | None:
    row = session.get(Setting, key)
    return json.loads(row.value) if row else None


def write_setting(session: Session, key: str, value: dict, actor_id: str | None) -> None:
    row = session.get(Setting, key)
    if row is None:
        row = Setting(key=key)
        session.add(row)
    row.value, row.updated_at, row.updated_by = json.dumps(value), utc_now(), actor_id


def password_policy(session: Session) -> PasswordPolicy:
    """The policy in force: the admins' settings, else the defaults."""
    return PasswordPolicy(**(read_setting(session, "password_policy") or {}))


def public_user(user: User) -> dict:
    return {
        "id": user.id, "username": user.username, "email": user.email,
        "first_name": user.first_name, "last_name": user.last_name, "full_name": user.full_name,
        "company": user.company, "status": user.status, "uid_number": user.uid_number,
        "is_first_admin": user.is_first_admin, "must_change_password": user.must_change_password,
        "totp_enrolled": user.totp_enrolled, "totp_required": user.totp_required,
        "version": user.version, "created_at": iso(user.created_at), "updated_at": iso(user.updated_at),
        "last_login_at": iso(user.last_login_at),
    }


# --- user administration ------------------------------------------------------

def admin_user(session: Session, user: User, role: str | None) -> dict:
    """A user as administrators see them: with their role in the caller's tenant and the 2FA flags."""
    return admin_users(session, [(user, role)])[0]


def admin_users(session: Session, rows: list[tuple[User, str | None]]) -> list[dict]:
    """admin_user of many users with two queries in all (the user list)."""
    flags = two_factor_flags(session, [user for user, _ in rows])
    return [{**public_user(user), **flags[user.id], "role": role} for user, role in rows]


def signed_in_user(session: Session, user: User) -> dict:
    """The user of a session, as sign-in answers and the gateway's guards read it (with what 2FA owes)."""
    return {**public_user(user), **two_factor_flags(session, [user])[user.id]}


def role_of(session: Session, user_id: str, tenant_id: str) -> str | None:
    row = session.get(UserRole, (user_id, tenant_id))
    return row.role if row else None


def _sort_columns(sort: str) -> list:
    return {
        "name": [User.first_name, User.last_name], "username": [User.username], "email": [User.email],
        "role": [UserRole.role], "status": [User.status], "totp_enrolled": [User.totp_enrolled],
        "last_login_at": [User.last_login_at], "created_at": [User.created_at],
    }[sort]


_NULLABLE = {"role", "username", "last_login_at"}


class UserPage(NamedTuple):
    rows: list[tuple[User, str | None]]
    total: int  # exact up to TOTAL_CAP, else TOTAL_CAP
    total_exact: bool
    next_cursor: str | None  # where the next page starts; None: this is the last


# Counting every match of an unselective filter costs a pass over it (tens of ms at 100,000
# users); beyond this many, lists say "at least" instead. It is also the most candidates a
# filter may hand the page query to sort (see _driving_filter).
TOTAL_CAP = 1000


class _Filter(NamedTuple):
    """One filter of the user list in the forms the SQLite planner must be told apart.

    `drive` lets the database find the matches through the filter's own index; `check` tests a
    user row by row and can never decide the plan; `ids` selects the matching user ids through
    the index (SQLite only: counted to choose which filter, if any, drives the query).
    """

    drive: sa.ColumnElement
    check: sa.ColumnElement
    ids: sa.Select | None


def list_users(session: Session, tenant_id: str | None, *, q: str | None = None, status: str | None = None,
               role: str | None = None, sort: str = "created_at", order: str = "desc", limit: int = 50,
               cursor: str | None = None) -> UserPage:
    """One page of the members of `tenant_id` (None: every user) with their role there, and how
    many match (exactly up to TOTAL_CAP). `cursor`: the previous page's next_cursor.

    The matches are read first (ids, up to the cap), through the index of the filter that has the
    fewest (on SQLite one of at most TOTAL_CAP drives the query: the planner is told, see _Filter).
    At most TOTAL_CAP matches: the page sorts them. More: the sort's index is walked with every
    filter checked row by row, which finds a page after a few thousand rows at most since so many
    match. Pages start where the last one ended (keyset), so a late page costs what the first
    does. Then one query loads the page's users. PostgreSQL's planner picks indexes itself.
    """
    # A key the filters fix (sort by role within one role) orders nothing: the id alone does.
    key = None if {"role": role, "status": status}.get(sort) else sort
    after = _position(cursor, sort, order, key)
    has_role = sa.and_(UserRole.user_id == User.id, UserRole.tenant_id == tenant_id)
    filters = _user_filters(session, tenant_id, q, status, role)
    driver = _driving_filter(session, filters)
    conditions = [f.drive if name == driver else f.check for name, f in filters.items()]

    matched = list(session.scalars(_matched(filters, driver, conditions).limit(TOTAL_CAP + 1)))
    if len(matched) <= TOTAL_CAP:  # that is every match: the page only sorts them
        conditions = [User.id.in_(matched)]
    ids = _ids_after(session, key, order == "desc", conditions, has_role, after, limit + 1)
    more, ids = len(ids) > limit, ids[:limit]
    found = {user.id: (user, user_role) for user, user_role in session.execute(
        sa.select(User, UserRole.role).outerjoin(UserRole, has_role).where(User.id.in_(ids)))}
    rows = [found[user_id] for user_id in ids if user_id in found]
    next_cursor = _user_list_cursor(sort, order, key, *rows[-1]) if more and rows else None
    return UserPage(rows, min(len(matched), TOTAL_CAP), len(matched) <= TOTAL_CAP, next_cursor)


def _ids_after(session: Session, key: str | None, descending: bool, conditions: list, has_role,
               after: tuple[list, str] | None, limit: int) -> list[str]:
    """Up to `limit` ids in the list's order after `after` (the previous page's last key values
    and id): by the key, then by id; users without the key (no role, never logged in) last.

    The users with the key come through its index, resumed with a row value comparison
    ((key, id) > (last key, last id)) that the index seeks to; those without it by id.
    """
    later = sa.ColumnOperators.__lt__ if descending else sa.ColumnOperators.__gt__
    direction = sa.desc if descending else sa.asc
    if key is None:
        keys, id_column = [], User.id
        having = sa.select(User.id).where(*conditions)
        lacking = None
    elif key == "role":  # in the read model's index order (tenant, role, user)
        keys, id_column = [UserRole.role], UserRole.user_id
        having = sa.select(User.id).join(UserRole, has_role).where(UserRole.role.is_not(None), *conditions)
        lacking = sa.select(User.id).where(~sa.exists().where(has_role, UserRole.role.is_not(None)), *conditions)
    else:
        keys, id_column = _sort_columns(key), User.id
        nullable = key in _NULLABLE
        having = sa.select(User.id).where(*(column.is_not(None) for column in keys if nullable), *conditions)
        lacking = sa.select(User.id).where(keys[0].is_(None), *conditions) if nullable else None
    values, last_id = after or ([], None)
    ids = []
    if None not in values:  # the cursor is not past the users with the key yet
        if after:
            having = having.where(later(sa.tuple_(*keys, id_column), sa.tuple_(*values, last_id)))
        ids = list(session.scalars(having.order_by(*map(direction, keys), direction(id_column)).limit(limit)))
        last_id = None  # those without the key follow from their first
    if lacking is not None and len(ids) < limit:
        if last_id is not None:
            lacking = lacking.where(later(User.id, last_id))
        ids += session.scalars(lacking.order_by(direction(User.id)).limit(limit - len(ids)))
    return ids


_USER_LIST_CURSOR = "users"
_DATETIME_KEYS = {"created_at", "last_login_at"}


def _user_list_cursor(sort: str, order: str, key: str | None, user: User, role: str | None) -> str:
    """The cursor of the page after this row: the list's sort and order, the row's key values, its id."""
    values = [] if key is None else [role] if key == "role" else [getattr(user, c.key) for c in _sort_columns(key)]
    values = [value.isoformat() if key in _DATETIME_KEYS and value is not None else value for value in values]
    return paging.encode_position(_USER_LIST_CURSOR, [sort, order, key, values, user.id])


def _position(cursor: str | None, sort: str, order: str, key: str | None) -> tuple[list, str] | None:
    """(key values, id) of the row a cursor of this list (this sort, order and key) follows; None for
    no cursor. A cursor of anything else is refused (ValidationFailed), never read as a first page."""
    position = paging.position_of(_USER_LIST_CURSOR, cursor)
    if position is None:
        return None
    try:
        cursor_sort, cursor_order, cursor_key, values, last_id = position
        if (cursor_sort, cursor_order, cursor_key) != (sort, order, key) \
                or not isinstance(last_id, str) or not isinstance(values, list) \
                or len(values) != (0 if key is None else len(_sort_columns(key))):
            raise ValueError(cursor)
        if key in _DATETIME_KEYS and values[0] is not None:
            values = [datetime.fromisoformat(values[0])]
    except (ValueError, TypeError, KeyError):
        raise paging.refuse_cursor() from None
    return values, last_id


def _user_filters(session: Session, tenant_id: str | None, q: str | None, status: str | None,
                  role: str | None) -> dict[str, _Filter]:
    """The list's filters by name: each with its index-driven and its row-by-row form."""
    on_sqlite = session.get_bind().dialect.name == "sqlite"
    filters = {}
    if q:
        needle = q.strip().lower()
        contains = User.search_text.contains(needle, autoescape=True)  # pg_trgm's GIN index serves it
        # FTS5 trigrams need 3 characters; shorter searches are checked row by row.
        found = sa.select(_USER_SEARCH.c.user_id).where(_search_match(needle)) \
            if on_sqlite and len(needle) >= 3 else None
        filters["q"] = _Filter(contains if found is None else User.id.in_(found), contains, found)
    if role:
        holders = sa.select(UserRole.user_id).where(UserRole.tenant_id == tenant_id, UserRole.role == role)
        filters["role"] = _Filter(User.id.in_(holders), holders.where(UserRole.user_id == User.id).exists(),
                                  holders if on_sqlite else None)
    if status:
        # `|| ''` keeps SQLite off the status index: most users share a few statuses.
        filters["status"] = _Filter(User.status == status, (User.status + "" if on_sqlite else User.status) == status,
                                    sa.select(User.id).where(User.status == status) if on_sqlite else None)
    if tenant_id is not None:
        members = sa.select(Membership.user_id).where(Membership.tenant_id == tenant_id, Membership.member.is_(True))
        filters["tenant"] = _Filter(User.id.in_(members), _is_member(User.id, tenant_id),
                                    members if on_sqlite else None)
    return filters


def _driving_filter(session: Session, filters: dict[str, _Filter]) -> str | None:
    """The filter with the fewest matches if it has at most TOTAL_CAP (each counted through its
    own index, up to the cap): sorting that few beats walking the sort's index past non-matches."""
    counted = [name for name, candidate in filters.items() if candidate.ids is not None]
    if not counted:
        return None
    # All in one statement; selecting a constant, FTS5 reads no stored column, only its index.
    sizes = session.execute(sa.select(*(sa.select(sa.func.count()).select_from(
        filters[name].ids.with_only_columns(sa.literal_column("1")).limit(TOTAL_CAP + 1).subquery()).scalar_subquery()
        for name in counted))).one()
    fewest, smallest = min(zip(sizes, counted))
    return smallest if fewest <= TOTAL_CAP else None


def _matched(filters: dict[str, _Filter], driver: str | None, conditions: list) -> sa.Select:
    """The ids of the matches (read up to the cap), first from the index that finds them fastest:
    the driver's; else the search's or the role's (the others checked per match, so reading stops
    at the cap early); else the users' own (the status index)."""
    if driver is not None:
        return sa.select(User.id).where(*conditions)
    for outer_name in ("q", "role"):
        outer = filters.get(outer_name)
        if outer is not None and outer.ids is not None:
            others = [f.check for name, f in filters.items() if name != outer_name]
            return outer.ids.where(sa.exists().where(User.id == outer.ids.selected_columns[0], *others))
    return sa.select(User.id).where(*(f.drive if name == "status" else f.check for name, f in filters.items()))


def _is_member(user_id_column, tenant_id: str):
    """Checked row by row (EXISTS on the read model's key), so the planner walks the sort's
    or the filter's index instead of the list of every member of a big tenant."""
    return sa.exists().where(Membership.user_id == user_id_column, Membership.tenant_id == tenant_id,
                             Membership.member.is_(True))


# SQLite's FTS5 trigram shadow table of search_text (migration b3f1c2d4e5a6).
_USER_SEARCH = sa.table("identity_users_search", sa.column("user_id"), sa.column("search_text"))


def _search_match(needle: str):
    phrase = '"' + needle.replace('"', '""') + '"'  # one phrase: a substring, operators literal
    return _USER_SEARCH.c.search_text.op("MATCH")(phrase)


# --- invitations, password resets, mail, settings ------------------------------------

def directory_people(session: Session, *, user_ids: list[str] | None = None, tenant_id: str | None = None,
                     after: str | None = None, limit: int = 2000) -> list[dict]:
    """Users with a username and a uidNumber, by id: what LDAP and Proxmox are given (internal)."""
    columns = (User.id, User.username, User.first_name, User.last_name, User.email, User.uid_number, User.status,
               User.password_hash)
    query = sa.select(*columns).where(User.username.is_not(None), User.uid_number.is_not(None))
    if user_ids is not None:
        query = query.where(User.id.in_(list(user_ids)))
    if tenant_id is not None:
        query = query.where(_is_member(User.id, tenant_id))
    if after is not None:
        query = query.where(User.id > after)
    rows = session.execute(query.order_by(User.id).limit(limit))
    return [{"user_id": r.id, "username": r.username, "first_name": r.first_name, "last_name": r.last_name,
             "email": r.email, "uid_number": r.uid_number, "status": r.status, "password_hash": r.password_hash}
            for r in rows]


def delete_setting(session: Session, key: str) -> bool:
    return session.execute(sa.delete(Setting).where(Setting.key == key)).rowcount > 0


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


def public_invitation(invitation: Invitation) -> dict:
    """Never the token hash."""
    return {
        "id": invitation.id, "email": invitation.email, "role": invitation.role,
        "tenant_id": invitation.tenant_id, "status": invitation.status, "user_id": invitation.user_id,
        "invited_by": invitation.invited_by, "created_at": iso(invitation.created_at),
        "expires_at": iso(invitation.expires_at), "sent_at": iso(invitation.sent_at),
        "accepted_at": iso(invitation.accepted_at),
    }
# --- tenants of users and sessions ------------------------------------------------

def memberships_of(session: Session, user_id: str) -> list[Membership]:
    """The user's tenants (read model), `default` first then by id."""
    rows = session.scalars(sa.select(Membership).where(Membership.user_id == user_id, Membership.member.is_(True)))
    return sorted(rows, key=_membership_order)


def membership(session: Session, user_id: str, tenant_id: str) -> Membership | None:
    row = session.get(Membership, (user_id, tenant_id))
    return row if row is not None and row.member else None


def join_tenant(session: Session, user_id: str, tenant_id: str, as_of: str, *, is_default: bool | None = None,
                confirmed: bool = False) -> Membership:
    """Adds (or revives) the membership; is_default None keeps the flag (a new one: default when the
    user's first). A default membership makes the user's others not default."""
    row = session.get(Membership, (user_id, tenant_id))
    if row is None:
        row = Membership(user_id=user_id, tenant_id=tenant_id, member=False, is_default=False, confirmed=False,
                         as_of=as_of)
        session.add(row)
    if is_default is None and not row.member:
        is_default = not memberships_of(session, user_id)
    row.confirmed = confirmed or (row.member and row.confirmed)
    row.member, row.as_of = True, as_of
    if is_default is not None:
        row.is_default = is_default
    if row.is_default:
        _only_default(session, user_id, tenant_id)
    session.flush()
    return row


def leave_tenant(session: Session, row: Membership, as_of: str) -> None:
    """Ends the membership (a tombstone stays); another tenant becomes the default if this one was."""
    was_default = row.is_default
    row.member, row.is_default, row.confirmed, row.as_of = False, False, True, as_of
    session.flush()
    rest = memberships_of(session, row.user_id)
    if was_default and rest:
        rest[0].is_default = True


def _only_default(session: Session, user_id: str, tenant_id: str) -> None:
    session.execute(sa.update(Membership).where(Membership.user_id == user_id, Membership.tenant_id != tenant_id)
                    .values(is_default=False))


def _starting_tenant(memberships) -> str:
    """Where a new session starts, among the user's memberships sorted as memberships_of sorts them:
    their default tenant, else their only or first one; `default` for a user of no tenant (super
    admins; anyone else is refused there by the gateway)."""
    chosen = next((row for row in memberships if row.is_default), memberships[0] if memberships else None)
    return chosen.tenant_id if chosen else "default"


def _membership_order(row) -> tuple[bool, str]:
    return row.tenant_id != "default", row.tenant_id


# Every tenant of a user (as tenants_of), each telling whether it is a membership and the default one.
_SIGN_IN_TENANTS = sa.union_all(
    sa.select(Membership.tenant_id, Membership.is_default, sa.true().label("is_membership"))
    .where(Membership.user_id == sa.bindparam("user_id"), Membership.member.is_(True)),
    sa.select(UserRole.tenant_id, sa.false().label("is_default"), sa.false().label("is_membership"))
    .where(UserRole.user_id == sa.bindparam("user_id"), UserRole.role.is_not(None)))


def sign_in_tenants(session: Session, user_id: str) -> tuple[str, tuple[str, ...]]:
    """Where a new session of the user starts, and tenants_of the user (which the sign-in event
    carries): one query for both, sign-in is the hot path."""
    rows = session.execute(_SIGN_IN_TENANTS, {"user_id": user_id}).all()
    joined = sorted((row for row in rows if row.is_membership), key=_membership_order)
    return _starting_tenant(joined), tuple(sorted({row.tenant_id for row in rows}))


def tenant_assignments(session: Session, user_ids: list[str]) -> dict[str, list[dict]]:
    """Per user: each tenant they belong to, with their role there and whether it is their default."""
    if not user_ids:
        return {}
    roles = {(row.user_id, row.tenant_id): row.role for row in session.scalars(
        sa.select(UserRole).where(UserRole.user_id.in_(user_ids)))}
    found: dict[str, list[dict]] = {user_id: [] for user_id in user_ids}
    rows = session.scalars(sa.select(Membership).where(Membership.user_id.in_(user_ids), Membership.member.is_(True))
                           .order_by(Membership.tenant_id != "default", Membership.tenant_id))
    for row in rows:
        found[row.user_id].append({"tenant_id": row.tenant_id, "role": roles.get((row.user_id, row.tenant_id)),
                                   "is_default": row.is_default})
    return found


def invitation_states(session: Session, user_ids: list[str]) -> dict[str, str]:
    """Per user made by an invitation: the state of their latest invitation."""
    if not user_ids:
        return {}
    rows = session.execute(sa.select(Invitation.user_id, Invitation.status).where(Invitation.user_id.in_(user_ids))
                           .order_by(Invitation.created_at))
    return {user_id: status for user_id, status in rows}


# --- sessions and login protection -------------------------------------------

def take_rate(session: Session, key: str, start: datetime, end: datetime, units: int, within) -> bool:
    """Count `units` against `key` in the window [start, end) if `within(new count)` allows it.

    One upsert (PostgreSQL and SQLite both have INSERT .. ON CONFLICT DO UPDATE .. RETURNING):
    concurrent requests of any instance queue on the row and none loses a count. A refused
    request's units are taken back, so only what was allowed counts. The key's own older
    windows are deleted on the way; other keys' are left to `forget_rate_windows`, so that
    no request holds row locks on counters it does not count against.
    """
    if within(_count_in_window(session, key, start, end, units)):
        return True
    table = RateCounter.__table__
    session.execute(sa.update(table).where(table.c.key == key, table.c.window_start == start)
                    .values(count=table.c.count - units))
    return False


def first_refusal(session: Session, key: str, start: datetime, end: datetime) -> bool:
    """Counts a refusal by `key`'s limit in its window; whether it is the window's first."""
    return _count_in_window(session, f"refused:{key}", start, end, 1) == 1


def _count_in_window(session: Session, key: str, start: datetime, end: datetime, units: int) -> int:
    table = RateCounter.__table__
    dialect = session.get_bind().dialect.name
    insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table)
    count = session.execute(
        insert.values(key=key, window_start=start, expires_at=end, count=units)
        .on_conflict_do_update(index_elements=[table.c.key, table.c.window_start],
                               set_={"count": table.c.count + units})
        .returning(table.c.count)).scalar_one()
    session.execute(sa.delete(table).where(table.c.key == key, table.c.window_start < start))
    return count


def forget_rate_windows(session: Session, now: datetime) -> int:
    """Deletes every counter whose window has ended; returns how many."""
    table = RateCounter.__table__
    return session.execute(sa.delete(table).where(table.c.expires_at <= now)).rowcount


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


def public_session(login_session: LoginSession, current_session_id: str | None = None) -> dict:
    return {"id": login_session.id, "created_at": iso(login_session.created_at),
            "last_used_at": iso(login_session.last_used_at), "expires_at": iso(login_session.expires_at),
            "ip": login_session.ip, "user_agent": login_session.user_agent,
            "current": login_session.id == current_session_id}


# --- two-factor authentication ---------------------------------------------------

TWO_FACTOR_POLICY = "2fa_policy"


def two_factor_policy_on(session: Session) -> bool:
    """The global policy "Require 2FA for super_admin"."""
    return bool((read_setting(session, TWO_FACTOR_POLICY) or {}).get("require_for_super_admin"))


def tenants_of(session: Session, user_id: str) -> tuple[str, ...]:
    """Every tenant the user belongs to or holds a role in (the read models of tenancy's
    memberships and rbac's assignments): events about the user carry them, so each tenant's
    audit view shows those events."""
    roles = sa.select(UserRole.tenant_id).where(UserRole.user_id == user_id, UserRole.role.is_not(None))
    memberships = sa.select(Membership.tenant_id).where(Membership.user_id == user_id, Membership.member.is_(True))
    return tuple(sorted(set(session.scalars(roles)) | set(session.scalars(memberships))))


def super_admin_ids(session: Session, user_ids: list[str]) -> set[str]:
    """Those of the users who hold super_admin in any tenant (which makes them super admins everywhere)."""
    if not user_ids:
        return set()
    query = sa.select(UserRole.user_id).where(UserRole.user_id.in_(user_ids), UserRole.role == SUPER_ADMIN)
    return set(session.scalars(query))


def is_super_admin(session: Session, user_id: str) -> bool:
    return bool(super_admin_ids(session, [user_id]))


def two_factor_flags(session: Session, users: list[User]) -> dict[str, dict]:
    """twofactor.flags of each user (by id): the policy is read once, super admins found in one query."""
    policy_on = two_factor_policy_on(session)
    supers = super_admin_ids(session, [user.id for user in users]) if policy_on else set()
    return {user.id: twofactor.flags(user.totp_enrolled, user.totp_required, policy_on, user.id in supers)
            for user in users}


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
