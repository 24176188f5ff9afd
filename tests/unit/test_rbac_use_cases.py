"""rbac's use cases driven directly with a unit of work (`db.unit_of_work()`) and a stand-in for the
memberships it asks over RPC: no nameko service, no broker. A use case commits its change and its
events together, once; a refused one leaves neither."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from kernel.envelope import SYSTEM, Actor, Event, Resource
from kernel.errors import Conflict, Forbidden, NotFound
from services.rbac import access, assignments, groups, handlers, roles, storage
from services.tenancy import events as tenancy_events
from tests.unit.conftest import FakeMemberships, migrated, user_created

ROOT = Actor(user_id="root-1", username="root-1")
ADMIN = Actor(user_id="adm-1", username="adm-1")
GIDS = (5000, 5999)


@pytest.fixture
def db(tmp_path):
    """rbac's database with root-1 (the first admin, super_admin) and adm-1 (admin of t1)."""
    database = migrated("rbac", tmp_path / "rbac.db", storage.metadata)
    for user_id, data in (("root-1", {"first_admin": True}), ("adm-1", {})):
        with database.unit_of_work() as uow:
            handlers.enrol_new_user(uow, Event.from_dict(user_created(user_id, **data)))
            uow.commit()
    with database.unit_of_work() as uow:
        assignments.assign(uow, "adm-1", "adm-1", "t1", "admin", ROOT)
        uow.commit()
    yield database
    database.dispose()


class Memberships(access.Memberships):
    """access.Memberships over FakeMemberships standing in for both tenancy and identity; join as it."""

    def __init__(self):
        fake = FakeMemberships()
        super().__init__(tenancy=fake, identity=fake)
        self.join = fake.join


@pytest.fixture
def memberships():
    people = Memberships()
    people.join("root-1")
    people.join("adm-1", "t1")
    return people


def emitted(db) -> list[dict]:
    with db.engine.connect() as conn:
        return [json.loads(body) for body in conn.scalars(sa.select(db.outbox.c.body).order_by(db.outbox.c.seq))]


def test_creating_a_role_commits_it_with_its_event_once(db):
    before = len(emitted(db))
    role = roles.create_role(db.unit_of_work(), ADMIN, "auditor", ["vm.view"], "reads", "t1", False)
    assert (role["name"], role["tenant_id"], role["version"], role["user_count"]) == ("auditor", "t1", 1, 0)
    assert [event["type"] for event in emitted(db)[before:]] == ["rbac.role_created"]
    assert [r["name"] for r in roles.list_roles(db.unit_of_work(), "t1") if not r["builtin"]] == ["auditor"]


def test_a_refused_use_case_leaves_neither_change_nor_event(db):
    before = emitted(db)
    with pytest.raises(Forbidden) as refused:
        roles.create_role(db.unit_of_work(), ADMIN, "everything", ["vm.view"], "", "t1", True)  # global
    assert refused.value.code == "super_admin_only"
    groups.create_group(db.unit_of_work(), ADMIN, "ops", None, "", False, "t1", False, GIDS)
    with pytest.raises(Conflict):
        groups.create_group(db.unit_of_work(), ROOT, "ops", None, "", False, "t2", False, GIDS)
    assert [event["type"] for event in emitted(db)[len(before):]] == ["rbac.group_created"]


def test_one_unit_of_work_serves_every_step_of_a_use_case(db, memberships):
    """add_member reads, asks authority and writes in three turns of the same unit of work."""
    group = groups.create_group(db.unit_of_work(), ADMIN, "devs", None, "", False, "t1", False, GIDS)
    with pytest.raises(NotFound):  # not a member of t1: unknown there
        groups.add_member(db.unit_of_work(), memberships, ADMIN, group["id"], "u-9", "u9", "t1")
    memberships.join("u-9", "t1")
    uow = db.unit_of_work()
    member, added = groups.add_member(uow, memberships, ADMIN, group["id"], "u-9", "u9", "t1")
    assert (member["user_id"], added) == ("u-9", True)
    assert groups.add_member(db.unit_of_work(), memberships, ADMIN, group["id"], "u-9", "u9", "t1")[1] is False
    assert [e["type"] for e in emitted(db)].count("rbac.member_added") == 3  # root-1, adm-1 (ldapusers), u-9
    assert groups.get_group(db.unit_of_work(), memberships, group["id"], "t1")["member_count"] == 1


def test_authority_is_asked_of_memberships_before_the_write(db, memberships):
    memberships.join("root-1", "t1")
    with pytest.raises(Forbidden) as refused:
        assignments.assign_role(db.unit_of_work(), memberships, ADMIN, "root-1", "viewer", "t1")
    assert refused.value.code == "outside_authority"
    memberships.join("u-2", "t1")
    answer = assignments.assign_role(db.unit_of_work(), memberships, ADMIN, "u-2", "viewer", "t1")
    assert (answer["role"], answer["tenant_id"]) == ("viewer", "t1")
    with db.engine.connect() as conn:
        assert access.grant(conn, "u-2", "t1").role == "viewer"


def test_a_handler_runs_in_the_unit_of_work_it_is_given(db):
    left = Event(type=tenancy_events.USER_REMOVED_FROM_TENANT, source="tenancy", category="tenancy", actor=SYSTEM,
                 resource=Resource("membership", "t1:adm-1", "adm-1"),
                 data={"user_id": "adm-1", "tenant_id": "t1", "username": "adm-1"})
    with db.unit_of_work() as uow:
        handlers.revoke_tenant_role(uow, left)
        # not committed yet: the consumer commits after the handler
    assert assignments.user_roles(db.unit_of_work(), "adm-1") != []
    with db.unit_of_work() as uow:
        handlers.revoke_tenant_role(uow, left)
        uow.commit()
    assert assignments.user_roles(db.unit_of_work(), "adm-1") == []
    assert emitted(db)[-1]["type"] == "rbac.role_unassigned"
