"""The user list query against a straightforward reference (Python over every row), for
every sort key both ways, with and without search, status and role filters, page after page.
Shared by the SQLite unit test and the PostgreSQL integration test."""
from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa
from alembic import command

from kernel import migrate
from kernel.db import ServiceDatabase
from kernel.envelope import utc_now
from services.identity import storage
from services.identity.domain import ACTIVE, INVITED, PENDING, SUSPENDED, USER_SORTS
from services.identity.storage import Membership, User, UserRole

FIRST = ("Ann", "Bob", "Cy", "Dee", "Hopper", "Grace")
LAST = ("Abel", "Hopper", "Young", "Lovelace", "Wu")

# (q, status, role): the search picks common, rare, two-character (no trigrams) and missing terms.
FILTERS = [
    (None, None, None), ("hopper", None, None), ("grace.lovelace", None, None), ("wu", None, None),
    ("nobody-at-all", None, None), (None, ACTIVE, None), (None, SUSPENDED, None), (None, None, "viewer"),
    (None, None, "admin"), ("hopper", ACTIVE, None), ("ann", None, "viewer"), ("o", PENDING, "admin"),
]


# The revision before the user list's sort indexes: people seeded there are indexed by the upgrade.
BEFORE_SORT_INDEXES = "2245209bb580"
SORT_INDEXES = {"ix_identity_users_sort_name", "ix_identity_users_sort_status", "ix_identity_users_sort_totp"}


def people_migrated_to_head(url: str) -> ServiceDatabase:
    """A database with seed_people made before the sort indexes existed, then upgraded to head."""
    cfg = migrate._alembic("identity", url)
    try:
        command.upgrade(cfg, BEFORE_SORT_INDEXES)
    finally:
        cfg.attributes["engine"].dispose()
    db = ServiceDatabase("identity", url, storage.metadata)
    with db.sessions() as session:
        seed_people(session)
        session.commit()
    migrate.upgrade("identity", url)
    indexes = {index["name"] for index in sa.inspect(db.engine).get_indexes("identity_users")}
    assert SORT_INDEXES <= indexes, indexes
    return db


def seed_people(session, count: int = 90, seed: int = 11) -> None:
    """Users with many equal sort keys (names, statuses, login times), some without a username,
    login or role, some of another tenant only, some whose membership of `default` ended."""
    rnd = random.Random(seed)
    now = utc_now().replace(microsecond=0)
    for i in range(count):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        status = rnd.choice((ACTIVE, ACTIVE, ACTIVE, PENDING, SUSPENDED, INVITED))
        username = None if status == INVITED else f"{first[0].lower()}{last.lower()}{i}"
        user = User(username=username, email=f"{first.lower()}.{last.lower()}.{i}@example.org", first_name=first,
                    last_name=last, company="", status=status, totp_enrolled=rnd.random() < 0.3,
                    created_at=now - timedelta(minutes=rnd.randrange(30)),
                    last_login_at=None if rnd.random() < 0.3 else now - timedelta(minutes=rnd.randrange(20)))
        user.refresh_search_text()
        session.add(user)
        session.flush()
        tenants = rnd.choice((("default",), ("default",), ("default", "other"), ("other",)))
        for tenant_id in tenants:
            session.add(Membership(user_id=user.id, tenant_id=tenant_id, member=True, as_of="x"))
            role = rnd.choice(("viewer", "viewer", "admin", "operator", None, "none-row"))
            if role != "none-row":
                session.add(UserRole(user_id=user.id, tenant_id=tenant_id, role=role, as_of="x"))
        if "default" not in tenants and rnd.random() < 0.5:  # a membership that ended (a tombstone)
            session.add(Membership(user_id=user.id, tenant_id="default", member=False, as_of="x"))
    session.flush()


def _sort_key(sort: str, user: User, role: str | None):
    return {"name": (user.first_name, user.last_name), "username": user.username, "email": user.email,
            "role": role, "status": user.status, "totp_enrolled": user.totp_enrolled,
            "last_login_at": user.last_login_at, "created_at": user.created_at}[sort]


def reference_rows(session, tenant_id, q, status, role, sort, order) -> list[tuple[str, str | None]]:
    """Every matching (user id, role) in the list's order: by the key, then by id, missing keys last."""
    members = {row.user_id for row in session.scalars(sa.select(Membership).where(
        Membership.tenant_id == tenant_id, Membership.member.is_(True)))}
    roles = {row.user_id: row.role for row in session.scalars(sa.select(UserRole).where(
        UserRole.tenant_id == tenant_id))}
    needle = (q or "").strip().lower()
    rows = [(user, roles.get(user.id)) for user in session.scalars(sa.select(User))
            if (tenant_id is None or user.id in members) and needle in user.search_text
            and (status is None or user.status == status) and (role is None or roles.get(user.id) == role)]
    descending = order == "desc"
    present = [(_sort_key(sort, user, held), user.id, held) for user, held in rows
               if _sort_key(sort, user, held) is not None]
    missing = [(user.id, held) for user, held in rows if _sort_key(sort, user, held) is None]
    return [(user_id, held) for _, user_id, held in sorted(present, reverse=descending)] + \
        sorted(missing, reverse=descending)


def assert_list_matches_reference(session, tenant_id="default", limit=7) -> int:
    """Pages through every filter, sort and order; returns how many lists were compared."""
    compared = 0
    for q, status, role in FILTERS:
        for sort in USER_SORTS:
            for order in ("asc", "desc"):
                case = dict(q=q, status=status, role=role, sort=sort, order=order)
                expected = reference_rows(session, tenant_id, **case)
                listed, cursor = [], None
                while True:
                    page = storage.list_users(session, tenant_id, limit=limit, cursor=cursor, **case)
                    assert (page.total, page.total_exact) == (min(len(expected), storage.TOTAL_CAP),
                                                              len(expected) <= storage.TOTAL_CAP), case
                    listed += [(user.id, held) for user, held in page.rows]
                    assert (page.next_cursor is None) == (len(listed) >= len(expected)), (case, len(listed))
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                assert listed == expected, case
                compared += 1
    return compared
