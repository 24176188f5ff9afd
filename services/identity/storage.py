"""Identity's queries of accounts, the user list, settings, rate counters and the read model of roles.

The models are in models.py (re-exported here: `storage.User`, `storage.metadata`); sign-in's queries in
storage_sessions.py, mail's in storage_mail.py, tenants' in storage_tenants.py; answers in views.py."""
from __future__ import annotations

import json
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kernel import paging, ratelimit
from kernel.db import iso  # noqa: F401  (iso: storage.iso for the service)
from kernel.envelope import utc_now
from services.identity import domain, twofactor
from services.identity.domain import FIRST_UID_NUMBER, PasswordPolicy
from contracts.rbac import SUPER_ADMIN

# The models, re-exported: storage.User, storage.metadata and the like stay where callers look for them.
from services.identity.models import (  # noqa: F401
    Invitation, LoginSession, LoginThrottle, LoginTicket, MailJob, Membership, PasswordReset, RateCounter,
    RecoveryCode, RefreshToken, ResetRequest, Setting, UidCounter, User, UserRole, metadata)


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


_USER_BY_LOGIN = sa.select(User).where(sa.or_(User.username == sa.bindparam("login"),
                                              User.email.in_(sa.bindparam("emails", expanding=True))))


def find_by_login(session: Session, login: str) -> User | None:
    """The account whose username or email is `login` (an email in any of its stored forms:
    domain.email_lookup_forms, so `ada@exämple.com` finds `ada@xn--exmple-cua.com`)."""
    typed = (login or "").strip().lower()
    return session.scalars(_USER_BY_LOGIN, {"login": typed, "emails": domain.email_lookup_forms(typed) or [typed]}).first()


def user_by_email(session: Session, email: str) -> User | None:
    """The account holding `email` in any of its stored forms (domain.email_lookup_forms)."""
    forms = domain.email_lookup_forms(email)
    return session.scalars(sa.select(User).where(User.email.in_(forms))).first() if forms else None


def conflicts(session: Session, username: str | None, email: str | None, excluding: str | None = None) -> dict[str, str]:
    """Which of username/email another account (not `excluding`) already holds; None is not checked."""
    taken = {}
    others = sa.select(sa.func.count()).select_from(User)
    if excluding:
        others = others.where(User.id != excluding)
    if username is not None and session.scalar(others.where(User.username == username)):
        taken["username"] = "is already taken"
    if email is not None and session.scalar(others.where(User.email.in_(domain.email_lookup_forms(email) or [email]))):
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


REGISTRATION = "registration"
# Self-registration open to any email domain: how Gatehouse behaved before the setting existed.
REGISTRATION_DEFAULTS = {"self_registration": True, "allowed_email_domains": []}


def registration_settings(session: Session) -> dict:
    """The self-registration settings in force: the admins', else the defaults."""
    return {**REGISTRATION_DEFAULTS, **(read_setting(session, REGISTRATION) or {})}


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


_USER_SEARCH = sa.table("identity_users_search", sa.column("user_id"), sa.column("search_text"))


def _search_match(needle: str):
    phrase = '"' + needle.replace('"', '""') + '"'  # one phrase: a substring, operators literal
    return _USER_SEARCH.c.search_text.op("MATCH")(phrase)


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
    count = ratelimit.add_to_window(session, table, key, start, end, units)
    session.execute(sa.delete(table).where(table.c.key == key, table.c.window_start < start))
    return count


def forget_rate_windows(session: Session, now: datetime) -> int:
    """Deletes every counter whose window has ended; returns how many."""
    table = RateCounter.__table__
    return session.execute(sa.delete(table).where(table.c.expires_at <= now)).rowcount


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
