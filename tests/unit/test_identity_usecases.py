"""Identity's use cases driven with its unit of work and fakes, no nameko (services/identity/uow.py,
services/identity/usecases/): the cross-service write of a user with a role and groups, and its
compensation when rbac refuses its part (docs/architecture.md, "Writes that span services")."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from nameko.exceptions import RpcTimeout

from kernel.amqp.rpc_client import ReplyLost
from kernel.errors import Forbidden, ServiceUnavailable, ValidationFailed
from services.identity import storage
from services.identity.domain import ACTIVE
from services.identity.models import User
from services.identity.uow import IdentityUnitOfWork
from services.identity.usecases import accounts
from tests.unit.conftest import AllowingRbac, migrated
from tests.unit.test_identity_users import add_user

ADMIN = {"user_id": "admin-1", "username": "boss"}


class Rbac(AllowingRbac):
    """rbac as identity calls it for a user's role and groups; `refuse` names the call that fails when applied."""

    def __init__(self, refuse: str | None = None, unknown=()):
        super().__init__()
        self.refuse, self.unknown, self.roles, self.groups = refuse, list(unknown), {}, {}

    def unknown_groups(self, cns, tenant_id="default"):
        self.calls.append(("unknown_groups", tuple(cns)))
        return [cn for cn in cns if cn in self.unknown]

    def assign_role(self, actor, user_id, role, tenant_id="default", username=None, scope=None):
        self.calls.append(("assign_role", user_id, role))
        if self.refuse == "assign_role":
            raise Forbidden("rbac refuses the role.", code="escalation")
        self.roles[user_id] = role

    def unassign_role(self, actor, user_id, tenant_id="default", username=None):
        self.calls.append(("unassign_role", user_id))
        self.roles.pop(user_id, None)

    def add_to_groups(self, actor, user_id, groups, username=None, tenant_id="default"):
        self.calls.append(("add_to_groups", user_id, tuple(groups)))
        if self.refuse == "add_to_groups":
            raise Forbidden("Only a super admin can change who is in 'sysadmins'.", code="super_admin_only")
        self.groups.setdefault(user_id, []).extend(groups)
        return self.user_access(user_id, tenant_id)

    def user_access(self, user_id, tenant_id=None):
        role = self.roles.get(user_id)
        return {"roles": [{"tenant_id": "default", "role": role, "scope": {}}] if role else [],
                "groups": self.groups.get(user_id, [])}


@pytest.fixture
def database(tmp_path):
    db = migrated("identity", tmp_path / "identity.db", storage.metadata)
    yield db
    db.dispose()


def unit_of_work(database, rbac) -> IdentityUnitOfWork:
    return IdentityUnitOfWork(database, rbac=rbac)


def seed(database, username, role=None) -> str:
    with database.unit_of_work() as tx:
        user = add_user(tx.session, username, "First", "Last", status=ACTIVE, role=role)
        tx.commit()
        return user.id


def outbox_types(database) -> list[str]:
    with database.engine.connect() as conn:
        return [json.loads(body)["type"] for body in conn.execute(
            sa.select(database.outbox.c.body).order_by(database.outbox.c.seq)).scalars()]


def test_the_unit_of_work_commits_once_and_rolls_back_what_it_did_not_commit(database):
    uow = unit_of_work(database, Rbac())
    with uow:
        add_user(uow.session, "kept", "K", "Ept")
        uow.commit()
    with uow:
        add_user(uow.session, "dropped", "D", "Ropped")
        with uow:  # a helper's own transaction while one is open: the innermost is uow.session
            assert uow.session.scalar(sa.select(User.id).where(User.username == "dropped")) is None
    with uow:
        assert set(uow.session.scalars(sa.select(User.username))) == {"kept"}
    with pytest.raises(RuntimeError):
        uow.session  # noqa: B018 - no transaction open


def test_create_user_with_role_and_groups_answers_with_rbacs_part(database):
    rbac = Rbac()
    created = accounts.create_user(unit_of_work(database, rbac), ADMIN, "newbie", "newbie@example.com", "New", "Bie",
                                   role="operator", groups=["ops"], with_access=True)
    assert created["user"]["role"] == "operator" and created["user"]["groups"] == ["ops"]
    names = [call[0] for call in rbac.calls]
    assert names.index("check_assignable") < names.index("assign_role") < names.index("add_to_groups")
    assert outbox_types(database) == ["identity.user_created"]


def test_create_user_refused_by_rbac_when_applied_leaves_no_account(database):
    rbac = Rbac(refuse="add_to_groups")
    with pytest.raises(Forbidden) as refused:
        accounts.create_user(unit_of_work(database, rbac), ADMIN, "newbie", "newbie@example.com", "New", "Bie",
                             role="viewer", groups=["sysadmins"], with_access=True)
    assert refused.value.code == "super_admin_only"  # rbac's error, unchanged
    with database.unit_of_work() as tx:
        assert tx.session.scalar(sa.select(User).where(User.username == "newbie")) is None
    # audit and sync hear of the account and of its removal
    assert outbox_types(database) == ["identity.user_created", "identity.user_removed"]


def test_unknown_groups_refuse_before_anything_changes(database):
    rbac = Rbac(unknown=["nope"])
    with pytest.raises(ValidationFailed) as refused:
        accounts.create_user(unit_of_work(database, rbac), ADMIN, "newbie", "newbie@example.com", "New", "Bie",
                             groups=["nope"])
    assert refused.value.code == "unknown_group"
    assert outbox_types(database) == [] and not any(call[0] == "add_to_groups" for call in rbac.calls)


def test_update_user_refused_by_rbac_when_applied_restores_the_fields_status_and_role(database):
    seed(database, "boss")
    user_id = seed(database, "pat", role="viewer")
    rbac = Rbac(refuse="add_to_groups")
    rbac.roles[user_id] = "viewer"
    with pytest.raises(Forbidden):
        accounts.update_user(unit_of_work(database, rbac), ADMIN, user_id,
                             {"first_name": "After", "status": "suspended"}, role="operator", groups=["sysadmins"])
    with database.unit_of_work() as tx:
        user = tx.session.get(User, user_id)
        assert (user.first_name, user.status) == ("First", ACTIVE)
        assert user.version == 3  # the change and the change back
    assert rbac.roles[user_id] == "viewer"  # the role rbac had replaced is back
    assert [call[0] for call in rbac.calls if call[0] in ("assign_role", "unassign_role")] == \
        ["assign_role", "assign_role"]
    types = outbox_types(database)
    assert types.count("identity.user_updated") == 2 and types.count("identity.user_status_changed") == 2


def test_update_user_keeps_a_later_writers_value_when_it_compensates(database):
    user_id = seed(database, "pat")

    class Racing(Rbac):
        def add_to_groups(self, *args, **kwargs):
            with database.unit_of_work() as tx:  # another administrator renames the user meanwhile
                tx.session.get(User, user_id).first_name = "Other"
                tx.commit()
            return super().add_to_groups(*args, **kwargs)

    with pytest.raises(Forbidden):
        accounts.update_user(unit_of_work(database, Racing(refuse="add_to_groups")), ADMIN, user_id,
                             {"first_name": "After"}, groups=["sysadmins"])
    with database.unit_of_work() as tx:
        assert tx.session.get(User, user_id).first_name == "Other"


def test_update_user_whose_role_rbac_refuses_when_applied_restores_the_fields(database):
    """The role refused at apply time (e.g. deleted between check and apply): nothing of rbac's changed,
    identity's change is undone, and no group is asked for."""
    user_id = seed(database, "pat", role="viewer")
    rbac = Rbac(refuse="assign_role")
    with pytest.raises(Forbidden) as refused:
        accounts.update_user(unit_of_work(database, rbac), ADMIN, user_id, {"last_name": "Changed"}, role="operator",
                             groups=["ops"])
    assert refused.value.code == "escalation"
    with database.unit_of_work() as tx:
        assert tx.session.get(User, user_id).last_name == "Last"
    assert [call[0] for call in rbac.calls if call[0] in ("assign_role", "unassign_role", "add_to_groups")] == \
        ["assign_role"]
    assert outbox_types(database) == ["identity.user_updated", "identity.user_updated"]


# --- compensation undoes only what is known to have failed (reads never undo; unknown outcomes are re-read)

class FlakyReads(Rbac):
    """user_access fails `failing` times once rbac's role was written; the writes succeed."""

    def __init__(self, failing=1, **kwargs):
        super().__init__(**kwargs)
        self.failing = failing

    def user_access(self, user_id, tenant_id=None):
        if self.failing and any(call[0] == "assign_role" for call in self.calls):
            self.failing -= 1
            raise ServiceUnavailable("rbac is restarting.")
        return super().user_access(user_id, tenant_id)


def test_a_failed_read_after_rbacs_writes_does_not_undo_identitys_change(database):
    user_id = seed(database, "pat", role="viewer")

    class ReadsFailAfterTheWrite(Rbac):
        def user_access(self, user_id, tenant_id=None):
            if any(call[0] == "assign_role" for call in self.calls):
                raise ServiceUnavailable("rbac is restarting.")
            return super().user_access(user_id, tenant_id)

    rbac = ReadsFailAfterTheWrite()
    rbac.roles[user_id] = "viewer"
    answer = accounts.update_user(unit_of_work(database, rbac), ADMIN, user_id, {"last_name": "Changed"},
                                  role="operator", with_access=True)
    assert answer["last_name"] == "Changed" and answer["role"] == "operator"
    with database.unit_of_work() as tx:
        assert tx.session.get(User, user_id).last_name == "Changed"
    assert rbac.roles[user_id] == "operator"
    assert not any(call[0] == "unassign_role" for call in rbac.calls)
    assert outbox_types(database) == ["identity.user_updated"]


def test_a_read_failing_once_after_the_writes_is_read_again(database):
    user_id = seed(database, "pat")
    rbac = FlakyReads(failing=1)
    rbac.groups[user_id] = ["old"]
    answer = accounts.update_user(unit_of_work(database, rbac), ADMIN, user_id, {"last_name": "Changed"},
                                  role="operator", with_access=True)
    assert (answer["role"], answer["groups"], answer["last_name"]) == ("operator", ["old"], "Changed")
    assert rbac.failing == 0  # it was read again


@pytest.mark.parametrize("lost", [RpcTimeout("timed out"), ReplyLost("connection dropped"),
                                  ServiceUnavailable("interrupted", code="request_interrupted")])
def test_a_write_with_an_unknown_outcome_that_rbac_applied_is_not_undone(database, lost):
    user_id = seed(database, "pat")

    class Applied(Rbac):
        def add_to_groups(self, *args, **kwargs):
            super().add_to_groups(*args, **kwargs)
            raise lost  # applied, but the answer was lost

    rbac = Applied()
    answer = accounts.update_user(unit_of_work(database, rbac), ADMIN, user_id, {"last_name": "Changed"},
                                  role="operator", groups=["ops"], with_access=True)
    assert (answer["role"], answer["groups"]) == ("operator", ["ops"])
    with database.unit_of_work() as tx:
        assert tx.session.get(User, user_id).last_name == "Changed"
    assert rbac.roles[user_id] == "operator" and not any(call[0] == "unassign_role" for call in rbac.calls)


def test_a_write_with_an_unknown_outcome_that_rbac_did_not_apply_is_undone(database):
    user_id = seed(database, "pat")

    class Lost(Rbac):
        def assign_role(self, *args, **kwargs):
            self.calls.append(("assign_role",))
            raise RpcTimeout("timed out")  # never ran

    rbac = Lost()
    with pytest.raises(RpcTimeout):
        accounts.update_user(unit_of_work(database, rbac), ADMIN, user_id, {"last_name": "Changed"}, role="operator")
    with database.unit_of_work() as tx:
        assert tx.session.get(User, user_id).last_name == "Last"


def test_the_restored_role_is_rbacs_not_identitys_lagging_read_model(database):
    user_id = seed(database, "pat", role="viewer")  # identity's read model has not seen rbac's last change yet
    rbac = Rbac(refuse="add_to_groups")
    rbac.roles[user_id] = "auditor"
    with pytest.raises(Forbidden):
        accounts.update_user(unit_of_work(database, rbac), ADMIN, user_id, {"last_name": "Changed"},
                             role="operator", groups=["sysadmins"])
    assert rbac.roles[user_id] == "auditor"


def test_undo_update_keeps_the_same_value_written_by_another_administrator_meanwhile(database):
    user_id = seed(database, "pat")

    class Racing(Rbac):
        def add_to_groups(self, *args, **kwargs):
            with database.unit_of_work() as tx:  # another administrator writes the very same name
                user = tx.session.get(User, user_id)
                user.first_name, user.version = "After", user.version + 1
                tx.commit()
            return super().add_to_groups(*args, **kwargs)

    with pytest.raises(Forbidden):
        accounts.update_user(unit_of_work(database, Racing(refuse="add_to_groups")), ADMIN, user_id,
                             {"first_name": "After"}, groups=["sysadmins"])
    with database.unit_of_work() as tx:
        assert tx.session.get(User, user_id).first_name == "After"


# --- addresses: looked up in any stored form; one sent back unchanged is not checked again

def set_email(database, user_id, email) -> None:
    with database.unit_of_work() as tx:
        tx.session.get(User, user_id).email = email
        tx.commit()


def test_an_idn_address_is_found_typed_in_unicode_or_ascii_form(database):
    ada, jorg = seed(database, "ada"), seed(database, "jorg")
    set_email(database, ada, "ada@xn--exmple-cua.com")
    set_email(database, jorg, "jörg@exämple.com")  # stored before the rule: stays as it is
    with database.unit_of_work() as tx:
        for typed in (" ADA@exämple.com", "ada@xn--exmple-cua.com", "ada"):
            assert storage.find_by_login(tx.session, typed).id == ada, typed
        assert storage.find_by_login(tx.session, "Jörg@exämple.com").id == jorg
        assert storage.user_by_email(tx.session, "ada@EXÄMPLE.com").id == ada
        assert storage.conflicts(tx.session, None, "ada@exämple.com") == {"email": "is already registered"}
        assert storage.find_by_login(tx.session, "ada@example.com") is None


def test_a_patch_sending_back_an_unchanged_stored_email_is_not_refused(database):
    user_id = seed(database, "jorg")
    set_email(database, user_id, "jörg@exämple.com")  # the rule for new addresses refuses it now
    answer = accounts.update_user(unit_of_work(database, Rbac()), ADMIN, user_id,
                                  {"email": "Jörg@exämple.com", "first_name": "Jörg"})
    assert (answer["email"], answer["first_name"]) == ("jörg@exämple.com", "Jörg")
    with pytest.raises(ValidationFailed) as refused:
        accounts.update_user(unit_of_work(database, Rbac()), ADMIN, user_id, {"email": "jürgen@exämple.com"})
    assert "email" in refused.value.details
