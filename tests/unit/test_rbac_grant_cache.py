"""rbac's grant cache: the cache itself, the triggers that bump the grant generation, and two
rbac instances on one database (no broker): a change made through one is decided by the other
on its very next call."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from kernel.config import Config
from kernel.envelope import SYSTEM, Actor, Event, Resource
from services.identity import events as identity_events
from services.rbac import domain, storage
from services.rbac.domain import Grant
from services.rbac.grant_cache import GrantCache
from services.rbac.service import RbacService
from services.rbac.storage import Group, GroupMember, Role, RoleAssignment
from services.tenancy import events as tenancy_events
from tests.unit.conftest import FakeMemberships, migrated

ROOT = Actor(user_id="root-1", username="root").__dict__
SYSADMINS = next(group for group in domain.BUILTIN_GROUPS if group.is_admin)
VIEWING = Grant(role=domain.VIEWER, permissions=domain.BUILTIN_ROLES[domain.VIEWER])
OPERATING = Grant(role=domain.OPERATOR, permissions=domain.BUILTIN_ROLES[domain.OPERATOR])


# --- the cache alone ---------------------------------------------------------------------------------


def computing(grant):
    calls = []

    def compute():
        calls.append(1)
        return grant

    return compute, calls


def test_a_grant_is_computed_once_per_generation():
    cache = GrantCache()
    compute, calls = computing(VIEWING)
    assert cache.grant(7, ("u", "t"), compute) is VIEWING
    assert cache.grant(7, ("u", "t"), compute) is VIEWING
    assert len(calls) == 1


def test_another_generation_computes_afresh_and_drops_the_rest():
    cache = GrantCache()
    cache.grant(7, ("u", "t"), lambda: VIEWING)
    cache.grant(7, ("v", "t"), lambda: VIEWING)
    assert cache.grant(8, ("u", "t"), lambda: OPERATING) is OPERATING
    assert cache.size == 1
    compute, calls = computing(OPERATING)
    assert cache.grant(8, ("v", "t"), compute) is OPERATING and calls == [1]


def test_without_a_generation_nothing_is_kept():
    cache = GrantCache()
    compute, calls = computing(VIEWING)
    cache.grant(None, ("u", "t"), compute)
    cache.grant(None, ("u", "t"), compute)
    assert len(calls) == 2 and cache.size == 0


def test_a_grant_computed_under_an_older_generation_never_serves_a_newer_one():
    """A slow call that read the count before a change finishes after a fast one that read it after."""
    cache = GrantCache()
    cache.grant(8, ("u", "t"), lambda: OPERATING)
    cache.grant(7, ("v", "t"), lambda: VIEWING)  # the slow call keeps its answer under its own count
    compute, calls = computing(OPERATING)
    assert cache.grant(8, ("v", "t"), compute) is OPERATING and calls == [1]


def test_a_full_cache_starts_afresh():
    cache = GrantCache(max_entries=2)
    for user in ("a", "b", "c"):
        cache.grant(1, (user, "t"), lambda: VIEWING)
    assert cache.size == 1


# --- the triggers ----------------------------------------------------------------------------------------


@pytest.fixture
def database(tmp_path):
    db = migrated("rbac", tmp_path / "rbac.db", storage.metadata)
    yield db
    db.dispose()


def generation(db) -> int:
    with db.engine.connect() as conn:
        return storage.grant_generation(conn)


NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
ROWS = {  # table -> (a new row, a change to it)
    "rbac_role_assignments": (lambda: RoleAssignment(user_id="u-1", tenant_id="default", role="viewer", locked=False,
                                                     scope={}, assigned_at=NOW), {"role": "operator"}),
    "rbac_roles": (lambda: Role(id="r-1", name="auditor", tenant_id=None, description="", permissions=["vm.view"],
                                created_at=NOW, updated_at=NOW), {"permissions": ["admin.audit"]}),
    "rbac_groups": (lambda: Group(id="g-1", cn="ops", gid_number=5100, description="", is_admin=False, builtin=False,
                                  created_at=NOW), {"is_admin": True}),
    "rbac_group_members": (lambda: GroupMember(group_id=SYSADMINS.id, user_id="u-1", username="u1", added_at=NOW),
                           {"username": "renamed"}),
}


def test_every_table_a_grant_is_made_of_has_its_triggers():
    assert set(ROWS) == set(storage.GRANT_TABLES)


def test_rbac_tables_are_grant_tables_unless_said_otherwise():
    """A new rbac table: if a decision may depend on it, add it to storage.GRANT_TABLES and give it the
    generation triggers in its migration (see bb56e186b39f); if not, list it here."""
    not_grant_tables = {"rbac_outbox", "rbac_inbox", "rbac_grant_generation", "rbac_rate_counters"}
    assert set(storage.metadata.tables) - not_grant_tables == set(storage.GRANT_TABLES)


@pytest.mark.parametrize("table", sorted(ROWS))
def test_every_insert_update_and_delete_bumps_the_generation(database, table):
    make, change = ROWS[table]
    row = make()
    model = type(row)
    counts = [generation(database)]
    with database.sessions() as session:
        session.add(row)
        session.commit()
        counts.append(generation(database))
        for field, value in change.items():
            setattr(row, field, value)
        session.commit()
        counts.append(generation(database))
        keys = sa.inspect(row).identity
        primary_key = sa.inspect(model).primary_key
        session.execute(sa.delete(model).where(*(column == key for column, key in zip(primary_key, keys))))
        session.commit()
        counts.append(generation(database))
    assert counts == sorted(set(counts)), counts  # each write moved it on


def test_a_rolled_back_write_leaves_the_generation(database):
    before = generation(database)
    with database.sessions() as session:
        session.add(ROWS["rbac_roles"][0]())
        session.flush()
        session.rollback()
    assert generation(database) == before


# --- two rbac instances on one database ----------------------------------------------------------------


def instance(path, memberships=None) -> RbacService:
    service = RbacService()
    service.tenancy = service.identity = memberships or FakeMemberships()
    service.db = migrated("rbac", path, storage.metadata)
    service.config = {"GATEHOUSE": Config.from_env({"GATEHOUSE_SECRET_KEY": "unit-test-key",
                                                    "GATEHOUSE_DATA_DIR": str(path.parent)})}
    service.grants = GrantCache()
    return service


@pytest.fixture
def pair(tmp_path):
    """Instances A and B of rbac sharing one database, each with its own cache; root is the first admin."""
    memberships = FakeMemberships()
    memberships.join("root-1")
    a, b = instance(tmp_path / "rbac.db", memberships), instance(tmp_path / "rbac.db", memberships)
    a.enrol_new_user(user_event(identity_events.USER_CREATED, "root-1", "root", first_admin=True))
    yield a, b
    a.db.dispose()
    b.db.dispose()


def user_event(type_, user_id, username, **data) -> dict:
    return Event(type=type_, source="identity", category="users", actor=SYSTEM,
                 resource=Resource("user", user_id, username), data={"username": username, **data}).to_dict()


def new_user(service, user_id, role=None, tenant_id="default"):
    service.tenancy.join(user_id, tenant_id)
    service.enrol_new_user(user_event(identity_events.USER_CREATED, user_id, user_id))
    if role:
        service.assign_role(ROOT, user_id, role, tenant_id=tenant_id)


def warmed(service, user_id, permission, tenant_id="default") -> bool:
    """B's answer, asked twice so that the second one comes from its cache."""
    service.authorize(user_id, permission, tenant_id)
    return service.authorize(user_id, permission, tenant_id)


def test_a_repeated_decision_comes_from_the_cache(pair, monkeypatch):
    a, b = pair
    new_user(a, "u-1", "viewer")
    reads = []
    real = storage.grant_inputs
    monkeypatch.setattr(storage, "grant_inputs", lambda *args: reads.append(args) or real(*args))
    for _ in range(3):
        assert b.authorize("u-1", "vm.view") and not b.authorize("u-1", "vm.start")
    assert len(reads) == 1


def test_a_role_edit_through_a_is_decided_by_b_at_once(pair):
    a, b = pair
    role = a.create_role(ROOT, "auditor", ["admin.audit"])
    new_user(a, "u-1", "auditor")
    assert warmed(b, "u-1", "admin.audit")
    a.update_role(ROOT, role["id"], permissions=["vm.view"])
    assert not b.authorize("u-1", "admin.audit") and b.authorize("u-1", "vm.view")


def test_an_assignment_change_through_a_is_decided_by_b_at_once(pair):
    a, b = pair
    new_user(a, "u-1", "viewer")
    assert not warmed(b, "u-1", "vm.start")
    a.assign_role(ROOT, "u-1", "operator")
    assert b.authorize("u-1", "vm.start")
    a.assign_role(ROOT, "u-1", "operator", scope={"nodes": ["pve1"]})
    assert not b.authorize("u-1", "vm.start", resource={"node": "pve2"})
    a.unassign_role(ROOT, "u-1")
    assert not b.authorize("u-1", "vm.view")


def test_administrator_group_changes_through_a_are_decided_by_b_at_once(pair):
    a, b = pair
    new_user(a, "u-1", "viewer")
    assert not warmed(b, "u-1", domain.SUPER_ADMIN_ONLY)
    a.add_member(ROOT, SYSADMINS.id, "u-1")
    assert b.authorize("u-1", domain.SUPER_ADMIN_ONLY) and b.authorize("u-1", "tenant.manage")
    a.remove_member(ROOT, SYSADMINS.id, "u-1")
    assert not b.authorize("u-1", "tenant.manage")

    ops = a.create_group(ROOT, "ops")
    a.add_member(ROOT, ops["id"], "u-1")
    assert not warmed(b, "u-1", "tenant.manage")
    a.update_group(ROOT, ops["id"], {"is_admin": True})
    assert b.authorize("u-1", "tenant.manage")
    a.delete_group(ROOT, ops["id"])
    assert not b.authorize("u-1", "tenant.manage")


def test_super_admin_granted_and_revoked_through_a_is_decided_by_b_at_once(pair):
    a, b = pair
    new_user(a, "u-1", "viewer", tenant_id="acme")
    assert not warmed(b, "u-1", "tenant.manage")
    a.assign_role(ROOT, "u-1", domain.SUPER_ADMIN, tenant_id="acme")
    assert b.authorize("u-1", "tenant.manage")  # super_admin anywhere holds everything everywhere
    a.unassign_role(ROOT, "u-1", tenant_id="acme")
    assert not b.authorize("u-1", "tenant.manage")


def test_a_tenant_membership_removal_consumed_by_a_is_decided_by_b_at_once(pair):
    a, b = pair
    new_user(a, "u-1", "operator", tenant_id="acme")
    assert warmed(b, "u-1", "vm.start", "acme")
    removal = Event(type=tenancy_events.USER_REMOVED_FROM_TENANT, source="tenancy", category="tenancy", actor=SYSTEM,
                    resource=Resource("user", "u-1", "u-1"),
                    data={"user_id": "u-1", "username": "u-1", "tenant_id": "acme", "reason": "removed"},
                    tenant_ids=("acme",)).to_dict()
    a.revoke_tenant_role(removal)
    assert not b.authorize("u-1", "vm.start", "acme")


def test_scope_of_follows_the_same_cache(pair):
    a, b = pair
    new_user(a, "u-1", "operator")
    assert b.scope_of("u-1") == domain.UNSCOPED
    a.assign_role(ROOT, "u-1", "operator", scope={"nodes": ["pve1"]})
    assert b.scope_of("u-1")["nodes"] == ["pve1"]


def test_one_query_grant_matches_every_kind_of_holder(pair):
    a, b = pair
    a.create_role(ROOT, "auditor", ["admin.audit"])
    a.create_role(ROOT, "acme-only", ["vm.console"], tenant_id="acme")
    new_user(a, "u-custom", "auditor")
    new_user(a, "u-tenant-role", "acme-only", tenant_id="acme")
    new_user(a, "u-none")
    assert b.authorize("u-custom", "admin.audit") and not b.authorize("u-custom", "vm.view")
    assert b.authorize("u-tenant-role", "vm.console", "acme") and not b.authorize("u-tenant-role", "vm.console")
    assert not b.authorize("u-none", "vm.view") and not b.authorize(None, "vm.view")
    assert b.authorize("root-1", "tenant.manage", "any-tenant") and b.authorize("root-1", domain.SUPER_ADMIN_ONLY)
