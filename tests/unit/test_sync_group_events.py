"""Which Proxmox VE connections a group event touches: a tenant's group its tenant's only; an
administrator or platform-wide group (members who are super admins, groups every tenant sees)
every connection. The directory holds every group and is marked for each."""
from __future__ import annotations

import pytest

from kernel.envelope import SYSTEM
from services.proxmox_sync.service import ProxmoxSyncService
from services.rbac import events as rbac_events
from services.rbac.storage import Group


@pytest.fixture
def marked():
    service = ProxmoxSyncService()
    calls = []
    service._directory = lambda: [("ldap", None)]
    service._connections_of = lambda tenant_ids=None: [("every" if tenant_ids is None else sorted(tenant_ids), None)]
    service._mark = lambda targets, *args: calls.append([target for target, _ in targets])
    return service, calls


def group(tenant_id, is_admin=False) -> Group:
    return Group(id="g-1", cn="ops", gid_number=6000, description="", is_admin=is_admin, builtin=False,
                 tenant_id=tenant_id)


def test_a_tenants_group_touches_its_tenants_connections_only(marked):
    service, calls = marked
    service.on_group_changed(rbac_events.group_created(group("t1"), SYSTEM).to_dict())
    service.on_membership_changed_for_proxmox(rbac_events.member_added(group("t1"), "u-1", "u", SYSTEM).to_dict())
    assert calls == [["ldap", ["t1"]], [["t1"]]]


@pytest.mark.parametrize("changed", [group(None), group("t1", is_admin=True)])
def test_platform_wide_and_administrator_groups_touch_every_connection(marked, changed):
    service, calls = marked
    service.on_group_changed(rbac_events.group_deleted(changed, SYSTEM, 0).to_dict())
    service.on_membership_changed_for_proxmox(rbac_events.member_removed(changed, "u-1", "u", SYSTEM).to_dict())
    assert calls == [["ldap", "every"], ["every"]]


def test_a_group_becoming_an_administrator_group_touches_every_connection(marked):
    service, calls = marked
    became = group("t1", is_admin=True)
    service.on_group_changed(rbac_events.group_updated(became, SYSTEM, {"is_admin": {"from": False, "to": True}})
                             .to_dict())
    stopped = group("t1")
    service.on_group_changed(rbac_events.group_updated(stopped, SYSTEM, {"is_admin": {"from": True, "to": False}})
                             .to_dict())
    assert calls == [["ldap", "every"], ["ldap", "every"]]
