"""User administration rules (domain) and the user list query (storage, on SQLite)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests import user_list_reference
from tests.unit.conftest import AllowingRbac, migrated
from kernel.envelope import utc_now
from kernel.errors import ValidationFailed
from services.identity import domain, storage, storage_sessions, storage_tenants
from services.identity.domain import ACTIVE, INVITED, PENDING, SUSPENDED
from services.identity.models import Membership, User, UserRole


# --- domain -------------------------------------------------------------------

def test_profile_problems_check_only_the_fields_given():
    assert domain.profile_problems({}) == {}
    assert domain.profile_problems({"company": ""}) == {}
    assert domain.profile_problems({"username": "root"}) == {"username": "is reserved for the system"}
    problems = domain.profile_problems({"username": "Bad", "email": "nope", "first_name": " ", "last_name": "x" * 65,
                                        "company": "c" * 129})
    assert set(problems) == {"username", "email", "first_name", "last_name", "company"}
    assert problems["first_name"] == "is required"
    assert problems["company"] == "must be at most 128 characters"


def test_clean_profile_trims_and_normalises_email():
    assert domain.clean_profile({"first_name": "  Ann ", "email": "Ann@Example.COM"}) == \
        {"first_name": "Ann", "email": "ann@example.com"}


@pytest.mark.parametrize("before, after", [
    (PENDING, ACTIVE), (PENDING, SUSPENDED), (ACTIVE, SUSPENDED), (SUSPENDED, ACTIVE), (ACTIVE, ACTIVE),
    (INVITED, INVITED),
])
def test_allowed_status_changes(before, after):
    assert domain.status_change_problem(before, after) is None


@pytest.mark.parametrize("before, after", [
    (ACTIVE, PENDING), (SUSPENDED, PENDING), (INVITED, ACTIVE), (INVITED, SUSPENDED), (ACTIVE, INVITED),
    (PENDING, INVITED),
])
def test_refused_status_changes(before, after):
    assert domain.status_change_problem(before, after)


def test_invited_users_change_only_through_their_invitation():
    assert "invitation" in domain.status_change_problem(INVITED, ACTIVE)


@pytest.mark.parametrize("action, actor, target, first_admin, expected", [
    (domain.DELETE, "me", "me", False, domain.OWN_ACCOUNT),
    (domain.SUSPEND, "me", "me", False, domain.OWN_ACCOUNT),
    (domain.DELETE, "me", "me", True, domain.OWN_ACCOUNT),
    (domain.CHANGE_ROLE, "me", "me", False, None),
    (domain.DELETE, "me", "first", True, domain.FIRST_ADMIN_PROTECTED),
    (domain.SUSPEND, "me", "first", True, domain.FIRST_ADMIN_PROTECTED),
    (domain.CHANGE_ROLE, "me", "first", True, domain.FIRST_ADMIN_PROTECTED),
    (domain.DELETE, "me", "other", False, None),
    (domain.SUSPEND, None, "other", False, None),
])
def test_protections(action, actor, target, first_admin, expected):
    assert domain.protection_problem(action, actor, target, first_admin) == expected


# --- storage: the user list -----------------------------------------------------

@pytest.fixture
def session(tmp_path):
    db = migrated("identity", tmp_path / "identity.db", storage.metadata)
    with db.sessions() as session:
        yield session
    db.dispose()


def add_user(session, username, first, last, status=ACTIVE, role=None, tenant="default", age=0, login_age=None,
             totp=False, tenants=("default",)):
    """A user, member of `tenants` and of `tenant` (where `role` is theirs)."""
    now = utc_now()
    user = User(username=username, email=f"{username}@example.com", first_name=first, last_name=last,
                company="", status=status, created_at=now - timedelta(minutes=age), totp_enrolled=totp,
                last_login_at=None if login_age is None else now - timedelta(minutes=login_age))
    user.refresh_search_text()
    session.add(user)
    session.flush()
    if role:
        session.add(UserRole(user_id=user.id, tenant_id=tenant, role=role, as_of="x"))
    for tenant_id in dict.fromkeys((*tenants, tenant)):
        storage_tenants.join_tenant(session, user.id, tenant_id, "x")
    session.flush()
    return user


@pytest.fixture
def people(session):
    return {
        "ann": add_user(session, "ann", "Ann", "Zed", role="admin", age=5, login_age=1, totp=True),
        "bob": add_user(session, "bob", "Bob", "Young", status=SUSPENDED, role="viewer", age=4),
        "cy": add_user(session, "cy_1", "Cy", "Xu", status=PENDING, age=3, login_age=2),
        "dee": add_user(session, "dee", "Dee", "Wu", role="viewer", tenant="other", age=2),
        "eve": add_user(session, "eve", "Ann", "Abel", role="viewer", age=1),
    }


def names(rows):
    return [user.username for user, _ in rows]


def every_page(session, tenant_id, cursor=None, **query) -> list[storage.UserPage]:
    """Page after page through next_cursor (from `cursor`)."""
    pages = [storage.list_users(session, tenant_id, cursor=cursor, **query)]
    while pages[-1].next_cursor:
        pages.append(storage.list_users(session, tenant_id, cursor=pages[-1].next_cursor, **query))
    return pages


def test_lists_every_user_with_the_role_of_the_tenant(session, people):
    rows, total, *_ = storage.list_users(session, "default", sort="username", order="asc")
    assert total == 5
    assert [(user.username, role) for user, role in rows] == [
        ("ann", "admin"), ("bob", "viewer"), ("cy_1", None), ("dee", None), ("eve", "viewer")]
    assert dict((u.username, r) for u, r in storage.list_users(session, "other")[0])["dee"] == "viewer"


def test_search_is_case_insensitive_over_name_username_and_email(session, people):
    assert names(storage.list_users(session, "default", q="ANN", sort="username", order="asc")[0]) == ["ann", "eve"]
    assert names(storage.list_users(session, "default", q="young")[0]) == ["bob"]
    assert names(storage.list_users(session, "default", q="dee@example")[0]) == ["dee"]


def test_search_wildcards_are_literal(session, people):
    assert storage.list_users(session, "default", q="%")[1] == 0
    assert names(storage.list_users(session, "default", q="_")[0]) == ["cy_1"]


def test_search_index_follows_renames_and_removals(session, people):
    """The trigram index (FTS5 on SQLite) is kept in step with search_text by triggers."""
    bob = people["bob"]
    bob.last_name = "Hopper-Quote\"s"
    bob.refresh_search_text()
    session.flush()
    assert names(storage.list_users(session, "default", q="young")[0]) == []
    assert names(storage.list_users(session, "default", q="hopper-quote\"s")[0]) == ["bob"]
    assert names(storage.list_users(session, "default", q="r-q")[0]) == ["bob"]  # substring across words
    assert names(storage.list_users(session, "default", q="bo")[0]) == ["bob"]  # under 3 characters: no trigrams
    session.delete(people["eve"])
    session.flush()
    assert names(storage.list_users(session, "default", q="abel")[0]) == []
    assert names(storage.list_users(session, "default", q="ann")[0]) == ["ann"]


def test_totals_beyond_the_cap_say_so_and_paging_still_ends(session, monkeypatch):
    monkeypatch.setattr(storage, "TOTAL_CAP", 3)
    for i in range(5):
        add_user(session, f"cap{i}", "Cap", f"{i}")
    pages = every_page(session, None, q="cap", sort="username", order="asc", limit=2)
    assert [(page.total, page.total_exact) for page in pages] == [(3, False)] * 3
    assert [names(page.rows) for page in pages] == [["cap0", "cap1"], ["cap2", "cap3"], ["cap4"]]
    exact = storage.list_users(session, None, q="cap3")
    assert (exact.total, exact.total_exact, exact.next_cursor) == (1, True, None)


def test_filters_and_total(session, people):
    rows, total, *_ = storage.list_users(session, "default", role="viewer", sort="username", order="asc")
    assert names(rows) == ["bob", "eve"] and total == 2
    rows, total, *_ = storage.list_users(session, "default", status=SUSPENDED)
    assert names(rows) == ["bob"] and total == 1
    assert storage.list_users(session, "default", role="viewer", status=ACTIVE)[1] == 1


def test_sort_by_name_breaks_ties_by_last_name_then_id(session, people):
    rows, *_ = storage.list_users(session, "default", sort="name", order="asc")
    assert names(rows) == ["eve", "ann", "bob", "cy_1", "dee"]
    rows, *_ = storage.list_users(session, "default", sort="name", order="desc")
    assert names(rows) == ["dee", "cy_1", "bob", "ann", "eve"]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_missing_values_sort_last_both_ways(session, people, order):
    logins = [user.last_login_at for user, _ in storage.list_users(session, "default", sort="last_login_at",
                                                                  order=order)[0]]
    assert logins[2:] == [None, None, None] and None not in logins[:2]
    roles = [role for _, role in storage.list_users(session, "default", sort="role", order=order)[0]]
    assert roles[3:] == [None, None]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("status", [None, ACTIVE])
def test_pages_sorted_by_role_cross_from_role_holders_to_users_without_one(session, order, status):
    for i in range(7):
        add_user(session, f"r{i}", "R", f"{i}", role=["admin", "viewer", None][i % 3],
                 status=[ACTIVE, PENDING][i % 2])
    everyone, total, *_ = storage.list_users(session, "default", sort="role", order=order, status=status, limit=100)
    expected = sorted(everyone, key=lambda row: row[0].id, reverse=order == "desc")
    expected = sorted([r for r in expected if r[1]], key=lambda row: row[1], reverse=order == "desc") + \
        [r for r in expected if not r[1]]
    assert names(everyone) == names(expected) and total == len(expected)
    paged = [row for page in every_page(session, "default", sort="role", order=order, status=status, limit=2)
             for row in page.rows]
    assert names(paged) == names(expected)


def test_other_sorts(session, people):
    assert names(storage.list_users(session, "default", sort="created_at", order="asc")[0]) == \
        ["ann", "bob", "cy_1", "dee", "eve"]
    assert names(storage.list_users(session, "default", sort="totp_enrolled", order="desc")[0])[0] == "ann"
    statuses = [u.status for u, _ in storage.list_users(session, "default", sort="status", order="asc")[0]]
    assert statuses == sorted(statuses)
    assert names(storage.list_users(session, "default", sort="email", order="desc")[0])[0] == "eve"


def test_pages_are_stable_and_complete_with_equal_sort_keys(session):
    for i in range(7):
        add_user(session, f"same{i}", "Same", "Name")
    pages = every_page(session, "default", sort="name", limit=3)
    assert [page.total for page in pages] == [7, 7, 7]
    seen = [user.id for page in pages for user, _ in page.rows]
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize("cap", [6, 1000])
@pytest.mark.parametrize("tenant_id", ["default", "other", None])
def test_every_list_shape_matches_the_reference_page_after_page(session, monkeypatch, cap, tenant_id):
    """A small cap makes filters of up to 6 matches drive the query and the others be walked
    row by row along the sort's index; the default cap has every filter drive it."""
    monkeypatch.setattr(storage, "TOTAL_CAP", cap)
    user_list_reference.seed_people(session)
    assert user_list_reference.assert_list_matches_reference(session, tenant_id) == \
        len(user_list_reference.FILTERS) * len(domain.USER_SORTS) * 2


def test_lists_of_users_made_before_the_sort_indexes_match_the_reference(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "TOTAL_CAP", 6)
    db = user_list_reference.people_migrated_to_head(f"sqlite:///{tmp_path / 'identity.db'}")
    try:
        with db.sessions() as session:
            assert user_list_reference.assert_list_matches_reference(session) > 0
    finally:
        db.dispose()


def test_a_user_added_while_paging_shifts_nothing(session, people):
    first = storage.list_users(session, "default", limit=2)  # newest first
    add_user(session, "newest", "New", "Est")
    rest = every_page(session, "default", limit=2, cursor=first.next_cursor)
    assert names(first.rows) + [name for page in rest for name in names(page.rows)] == [
        "eve", "dee", "cy_1", "bob", "ann"]


@pytest.mark.parametrize("query", [
    dict(sort="email"), dict(sort="name", order="asc"), dict(sort="role", role="viewer"), dict(sort="role")])
def test_a_cursor_of_another_list_or_none_at_all_is_refused(session, people, query):
    cursor = storage.list_users(session, "default", sort="name", limit=2).next_cursor
    role_cursor = storage.list_users(session, "default", sort="role", role="viewer", limit=1).next_cursor
    with pytest.raises(ValidationFailed) as refused:
        storage.list_users(session, "default", cursor=role_cursor if query == dict(sort="role") else cursor, **query)
    assert refused.value.details == {"cursor": "is not a cursor of this list"}
    with pytest.raises(ValidationFailed):
        storage.list_users(session, "default", cursor="bm90LWEtY3Vyc29y", **query)


def test_conflicts_can_exclude_the_user_being_edited(session, people):
    ann = people["ann"]
    assert storage.conflicts(session, "ann", "ann@example.com") == {"username": "is already taken",
                                                                     "email": "is already registered"}
    assert storage.conflicts(session, "ann", "ann@example.com", excluding=ann.id) == {}
    assert storage.conflicts(session, None, "bob@example.com", excluding=ann.id) == {"email": "is already registered"}


# --- the service's own enforcement (no broker: the RPC methods called directly) ------

@pytest.fixture
def identity(tmp_path):
    from services.identity.service import IdentityService

    service = IdentityService()
    service.db = migrated("identity", tmp_path / "svc.db", storage.metadata)
    service.rbac = AllowingRbac()
    yield service
    service.db.dispose()


def seed(service, username, status=ACTIVE, first_admin=False):
    with service.db.unit_of_work() as uow:
        user = add_user(uow.session, username, "First", "Last", status=status)
        user.is_first_admin = first_admin
        uow.commit()
        return user.id


def emitted(service):
    import json

    import sqlalchemy as sa
    with service.db.engine.connect() as conn:
        return [json.loads(body) for body in conn.execute(
            sa.select(service.db.outbox.c.body).order_by(service.db.outbox.c.seq)).scalars()]


def actor(user_id):
    return {"user_id": user_id, "username": "someone"}


def test_update_bumps_the_version_and_emits_changes_and_status(identity):
    user_id, admin_id = seed(identity, "pat", status=PENDING), seed(identity, "boss")
    user = identity.update_user(actor(admin_id), user_id, {"status": ACTIVE, "last_name": "New", "company": ""},
                                expected_version=1)
    assert user["version"] == 2 and user["status"] == ACTIVE and user["last_name"] == "New"
    events = emitted(identity)
    assert [e["type"] for e in events] == ["identity.user_updated", "identity.user_status_changed"]
    assert events[0]["data"]["changed"] == {"last_name": {"from": "Last", "to": "New"}}  # company was already ""
    assert events[1]["data"]["kind"] == "approved"
    assert identity.update_user(actor(admin_id), user_id, {"last_name": "New"})["version"] == 2  # no change


def test_update_refuses_stale_versions_and_lifecycle_breaks(identity):
    from kernel.errors import Conflict, PreconditionFailed

    user_id, admin_id = seed(identity, "pat", status=INVITED), seed(identity, "boss")
    with pytest.raises(PreconditionFailed):
        identity.update_user(actor(admin_id), user_id, {"company": "x"}, expected_version=7)
    with pytest.raises(Conflict) as refused:
        identity.update_user(actor(admin_id), user_id, {"status": ACTIVE})
    assert refused.value.code == "invalid_status_change"
    assert refused.value.details["from"] == INVITED and refused.value.details["to"] == ACTIVE
    assert emitted(identity) == []


def test_service_protects_own_account_and_first_admin(identity):
    from kernel.errors import Forbidden

    first_id, admin_id = seed(identity, "first", first_admin=True), seed(identity, "boss")
    refusals = [
        (lambda: identity.remove_user(actor(admin_id), admin_id), "own_account"),
        (lambda: identity.update_user(actor(admin_id), admin_id, {"status": SUSPENDED}), "own_account"),
        (lambda: identity.remove_user(actor(admin_id), first_id), "first_admin_protected"),
        (lambda: identity.update_user(actor(admin_id), first_id, {"status": SUSPENDED}), "first_admin_protected"),
        (lambda: identity.update_user(actor(admin_id), first_id, {}, role="viewer"), "first_admin_protected"),
    ]
    for attempt, code in refusals:
        with pytest.raises(Forbidden) as refused:
            attempt()
        assert refused.value.code == code
    assert emitted(identity) == []


def test_removing_an_invited_placeholder_revokes_its_invitation(identity):
    from services.identity.storage import Invitation

    user_id, admin_id = seed(identity, "placeholder", status=INVITED), seed(identity, "boss")
    with identity.db.unit_of_work() as uow:
        now = utc_now()
        uow.session.add(Invitation(id="inv-1", email="placeholder@example.com", user_id=user_id, role="viewer",
                                   tenant_id="default", status="pending", created_at=now, expires_at=now))
        uow.commit()
    identity.remove_user(actor(admin_id), user_id)
    assert [e["type"] for e in emitted(identity)] == ["identity.invitation_revoked", "identity.user_removed"]
    with identity.db.unit_of_work() as uow:
        assert uow.session.get(Invitation, "inv-1").status == "revoked"
        assert uow.session.get(User, user_id) is None


# --- the list is confined to a tenant's members (memberships read model) ----------------------

def test_lists_only_the_members_of_the_tenant(session, people):
    outsider = add_user(session, "zoe", "Zoe", "Out", role="admin", tenant="other", tenants=())
    assert "zoe" not in names(storage.list_users(session, "default", limit=100)[0])
    assert storage.list_users(session, "default")[1] == 5
    other = storage.list_users(session, "other", sort="username", order="asc")
    assert [(user.username, role) for user, role in other[0]] == [("dee", "viewer"), ("zoe", "admin")]
    assert other[1] == 2
    # every fast path of the count and of the role sort is confined too
    assert storage.list_users(session, "default", role="admin")[1] == 1
    assert storage.list_users(session, "default", q="out")[1] == 0
    assert "zoe" not in names(storage.list_users(session, "default", sort="role", limit=100)[0])
    assert storage.list_users(session, "other", q="zoe")[1] == 1
    # None: the cross-tenant view, every user
    assert storage.list_users(session, None, limit=100)[1] == 6
    assert storage_tenants.tenant_assignments(session, [outsider.id]) == {
        outsider.id: [{"tenant_id": "other", "role": "admin", "is_default": True}]}


def starting_tenant(session, user_id):
    return storage_tenants.sign_in_tenants(session, user_id)[0]


def test_a_membership_that_ended_takes_the_user_out_and_moves_the_default(session, people):
    dee = people["dee"]
    assert starting_tenant(session, dee.id) == "default"  # the first one joined is the default
    storage_tenants.leave_tenant(session, storage_tenants.membership(session, dee.id, "default"), "y")
    assert "dee" not in names(storage.list_users(session, "default", limit=100)[0])
    assert storage_tenants.membership(session, dee.id, "default") is None
    assert starting_tenant(session, dee.id) == "other"
    storage_tenants.join_tenant(session, dee.id, "default", "z", is_default=True)
    assert starting_tenant(session, dee.id) == "default"
    assert [row.is_default for row in storage_tenants.memberships_of(session, dee.id)] == [True, False]


def test_a_user_of_no_tenant_starts_in_default(session):
    loner = add_user(session, "solo", "So", "Lo", tenants=(), tenant="gone")
    storage_tenants.leave_tenant(session, session.get(Membership, (loner.id, "gone")), "y")
    assert storage_tenants.sign_in_tenants(session, loner.id) == ("default", ())


# --- sign-in queries (one statement where the general ones take several) -----------

@pytest.mark.parametrize("memberships, default, roles, expected", [
    ((), None, {}, ("default", ())),
    (("default",), None, {}, ("default", ("default",))),
    (("b", "a"), None, {}, ("b", ("a", "b"))),  # the first one joined is the default
    (("b", "default", "a"), "a", {}, ("a", ("a", "b", "default"))),
    (("b", "c"), "nowhere", {}, ("b", ("b", "c"))),  # no default: the first by id
    (("b", "default"), "nowhere", {}, ("default", ("b", "default"))),  # no default: `default` first
    (("b", "a"), None, {"c": "admin", "a": "viewer"}, ("b", ("a", "b", "c"))),  # a role is not a membership
    ((), None, {"c": "admin", "d": None}, ("default", ("c",))),  # a role withdrawn is no tenant
    (("a", "b"), "b", {"b": "admin"}, ("b", ("a", "b"))),
])
def test_sign_in_tenants_are_where_the_session_starts_and_every_tenant_of_the_user(session, memberships, default,
                                                                                    roles, expected):
    user = add_user(session, "ann", "Ann", "Zed", tenants=())
    session.query(Membership).delete()  # add_user joins `default` in any case
    for tenant_id in memberships:
        storage_tenants.join_tenant(session, user.id, tenant_id, "x", is_default=tenant_id == default or None)
    if default == "nowhere":
        session.query(Membership).update({"is_default": False})
    for tenant_id, role in roles.items():
        session.add(UserRole(user_id=user.id, tenant_id=tenant_id, role=role, as_of="x"))
    session.flush()
    assert storage_tenants.sign_in_tenants(session, user.id) == expected
    assert expected[1] == storage.tenants_of(session, user.id)  # what events about the user carry


def test_a_left_tenant_is_neither_where_a_session_starts_nor_one_of_the_users(session):
    user = add_user(session, "ann", "Ann", "Zed", tenants=("a", "b"))
    storage_tenants.leave_tenant(session, storage_tenants.membership(session, user.id, "a"), "y")
    storage_tenants.leave_tenant(session, storage_tenants.membership(session, user.id, "default"), "y")
    session.flush()
    assert storage_tenants.sign_in_tenants(session, user.id) == ("b", ("b",))


def test_throttles_are_read_for_every_key_at_once_and_only_where_failures_are_recorded(session):
    from services.identity.sessions import Throttle
    now = utc_now()
    storage_sessions.save_throttle(session, "ip:10.0.0.1", Throttle(3, now, now + timedelta(seconds=60)))
    rows = storage_sessions.throttles(session, ["ip:10.0.0.1", "account:nobody"])
    assert list(rows) == ["ip:10.0.0.1"]
    assert (rows["ip:10.0.0.1"].failures, rows["ip:10.0.0.1"].locked_until is not None) == (3, True)
    assert storage_sessions.throttles(session, ["account:nobody"]) == {}
