"""The rbac service's role entrypoints on a migrated SQLite database, without a broker: versions and
the If-Match rule of role edits."""
from __future__ import annotations

import pytest

from kernel.config import Config
from kernel.envelope import SYSTEM, Actor, Event, Resource
from kernel.errors import Forbidden, PreconditionFailed
from services.identity import events as identity_events
from services.rbac import storage
from services.rbac.service import RbacService
from tests.unit.conftest import migrated

ROOT = Actor(user_id="root-1", username="root").__dict__


@pytest.fixture
def rbac(tmp_path):
    service = RbacService()
    service.db = migrated("rbac", tmp_path / "rbac.db", storage.metadata)
    service.config = {"GATEHOUSE": Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path)})}
    first_admin = Event(type=identity_events.USER_CREATED, source="identity", category="users", actor=SYSTEM,
                        resource=Resource("user", ROOT["user_id"], "root"),
                        data={"username": "root", "first_admin": True})
    service.enrol_new_user(first_admin.to_dict())  # super_admin: may shape any role
    yield service
    service.db.dispose()


def test_every_change_of_a_role_bumps_its_version(rbac):
    role = rbac.create_role(ROOT, "auditor", ["admin.audit"])
    assert role["version"] == 1
    assert rbac.update_role(ROOT, role["id"], permissions=["admin.audit", "vm.view"])["version"] == 2
    assert rbac.update_role(ROOT, role["id"], description="reads the trail")["version"] == 3
    assert rbac.update_role(ROOT, role["id"], description="reads the trail")["version"] == 3  # no change
    assert rbac.get_role(role["id"])["version"] == 3


def test_an_edit_naming_an_old_version_is_refused_and_changes_nothing(rbac):
    role = rbac.create_role(ROOT, "auditor", ["admin.audit"])
    rbac.update_role(ROOT, role["id"], description="first", expected_version=1)
    with pytest.raises(PreconditionFailed) as stale:
        rbac.update_role(ROOT, role["id"], permissions=["vm.view"], expected_version=1)
    assert stale.value.details == {"version": 2}
    kept = rbac.get_role(role["id"])
    assert (kept["permissions"], kept["description"], kept["version"]) == (["admin.audit"], "first", 2)


def test_builtin_roles_answer_version_1_and_refuse_edits_whatever_the_version(rbac):
    assert rbac.get_role("viewer")["version"] == 1
    assert {r["version"] for r in rbac.list_roles() if r["builtin"]} == {1}
    with pytest.raises(Forbidden) as refused:
        rbac.update_role(ROOT, "viewer", permissions=["vm.view"], expected_version=1)
    assert refused.value.code == "builtin_role_protected"
