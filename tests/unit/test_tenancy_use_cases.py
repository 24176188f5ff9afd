"""tenancy's use cases driven directly with a unit of work (`db.unit_of_work()`) and stand-ins for what
they ask over RPC: no nameko service, no broker."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from kernel.crypto import SecretBox
from kernel.envelope import Actor
from kernel.errors import Conflict, Forbidden
from services.tenancy import connections, memberships, storage, tenants
from tests.unit.conftest import AllowingRbac, migrated

ADMIN = Actor(user_id="admin-1", username="root")
TOKEN = {"token_id": "gatehouse@pve!sync", "token_secret": "the-token-secret"}


class RefusingRbac(AllowingRbac):
    def authorize(self, user_id, permission, tenant_id="default", resource=None):
        return False


@pytest.fixture
def db(tmp_path):
    database = migrated("tenancy", tmp_path / "tenancy.db", storage.metadata)
    yield database
    database.dispose()


def outbox(db) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.scalars(sa.select(db.outbox.c.body).order_by(db.outbox.c.seq)))


def emitted(db) -> list[str]:
    return [json.loads(body)["type"] for body in outbox(db)]


def test_tenants_need_the_switch_and_the_switch_needs_a_super_admin(db):
    with pytest.raises(Conflict) as refused:
        tenants.create_tenant(db.unit_of_work(), ADMIN, "Acme")
    assert refused.value.code == "multi_tenancy_disabled"
    with pytest.raises(Forbidden):
        tenants.enable(db.unit_of_work(), RefusingRbac(), ADMIN)
    assert emitted(db) == []
    assert tenants.enable(db.unit_of_work(), AllowingRbac(), ADMIN)["enabled"] is True
    acme = tenants.create_tenant(db.unit_of_work(), ADMIN, " Acme ", "the first")
    assert (acme["name"], acme["user_count"], acme["version"]) == ("Acme", 0, 1)
    with pytest.raises(Conflict):
        tenants.create_tenant(db.unit_of_work(), ADMIN, "ACME")
    assert emitted(db) == ["tenancy.multi_tenancy_enabled", "tenancy.tenant_created"]


def test_a_membership_and_its_role_commit_together_and_the_last_one_stays(db):
    rbac = AllowingRbac()
    tenants.enable(db.unit_of_work(), rbac, ADMIN)
    acme = tenants.create_tenant(db.unit_of_work(), ADMIN, "Acme")
    membership, created = memberships.assign_user(db.unit_of_work(), rbac, ADMIN, acme["id"], "u-1", "ann", "viewer")
    assert (membership["tenant_id"], membership["is_default"], created) == (acme["id"], True, True)
    assert ("check_assignable", "admin-1", "viewer", acme["id"]) in rbac.calls
    with pytest.raises(Conflict) as refused:
        memberships.remove_user(db.unit_of_work(), rbac, ADMIN, acme["id"], "u-1")
    assert refused.value.code == "last_tenant"
    assert memberships.memberships_of(db.unit_of_work(), "u-1") == [
        {"tenant_id": acme["id"], "tenant_name": "Acme", "is_default": True}]
    assert emitted(db)[-1] == "tenancy.user_assigned_to_tenant"


def test_a_connections_secret_is_sealed_and_shown_to_proxmox_sync_only(db):
    box = SecretBox("unit-test-key")
    fields = {"name": "lab", "url": "https://pve.example:8006", "fingerprint": None, "auth": TOKEN}
    shown = connections.create_connection(db.unit_of_work(), box, ADMIN, "default", fields)
    assert shown["auth"] == {"method": "token", "token_id": TOKEN["token_id"], "secret_set": True}
    assert emitted(db) == ["tenancy.connection_created"]
    assert "the-token-secret" not in json.dumps(shown) + "".join(outbox(db))
    credentials = connections.connection_credentials(db.unit_of_work(), box, shown["id"])
    assert credentials["secret"] == "the-token-secret"
    with db.engine.connect() as conn:
        sealed = conn.scalar(sa.select(storage.Connection.secret_sealed))
    assert "the-token-secret" not in sealed
