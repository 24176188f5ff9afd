"""The permission catalogue, built-in roles, escalation, scopes, group names and GIDs."""
from __future__ import annotations

import pytest

from services.rbac.domain import (
    ADMIN,
    BUILTIN_ROLES,
    OPERATOR,
    PERMISSIONS,
    SUPER_ADMIN,
    SUPER_ADMIN_ONLY,
    VIEWER,
    Grant,
    Permission,
    assignable_problem,
    escalation_problem,
    filter_in_scope,
    free_gid,
    gid_problem,
    grant_of,
    group_problems,
    holds,
    in_scope,
    normalize_scope,
    permission_diff,
    permissions_of,
    role_problems,
    scope_problems,
)

ALL = frozenset(PERMISSIONS)


def test_catalogue_is_not_empty_and_keyed_by_name():
    assert len(PERMISSIONS) >= 20
    for name, permission in PERMISSIONS.items():
        assert isinstance(permission, Permission)
        assert permission.name == name


@pytest.mark.parametrize("name", sorted(PERMISSIONS))
def test_every_permission_has_category_and_description(name):
    permission = PERMISSIONS[name]
    assert permission.category and permission.category == name.split(".", 1)[0]
    assert permission.description.strip()


def test_every_role_names_only_catalogued_permissions():
    for role, permissions in BUILTIN_ROLES.items():
        assert permissions <= ALL, role


def test_permissions_named_by_the_roles_exist():
    for name in ("tenant.manage", "admin.users", "admin.rbac", "admin.settings", "admin.audit", "vm.view"):
        assert name in PERMISSIONS


def test_builtin_roles():
    assert set(BUILTIN_ROLES) == {SUPER_ADMIN, ADMIN, OPERATOR, VIEWER}


def test_super_admin_has_everything():
    assert permissions_of(SUPER_ADMIN) == ALL


def test_admin_has_all_but_tenant_manage_and_the_platform_settings():
    assert permissions_of(ADMIN) == ALL - {"tenant.manage", "admin.settings"}


def test_operator_lacks_user_rbac_and_settings_administration():
    operator = permissions_of(OPERATOR)
    assert not operator & {"admin.users", "admin.rbac", "admin.settings", "tenant.manage"}
    assert {"vm.start", "vm.stop", "admin.audit", "sync.run"} <= operator
    assert operator == ALL - {"tenant.manage", "admin.users", "admin.rbac", "admin.settings"}


def test_viewer_has_exactly_the_view_permissions():
    expected = {name for name in PERMISSIONS if name.endswith(".view")}
    assert expected >= {"vm.view", "storage.view", "node.view", "tenant.view"}
    assert permissions_of(VIEWER) == expected


def test_roles_are_nested():
    assert permissions_of(VIEWER) < permissions_of(OPERATOR) < permissions_of(ADMIN) < permissions_of(SUPER_ADMIN)


@pytest.mark.parametrize("role", [None, "", "root", "Super_Admin"])
def test_unknown_or_missing_role_has_no_permissions(role):
    assert permissions_of(role) == frozenset()


# --- escalation ------------------------------------------------------------------------


def test_a_super_admin_grant_holds_everything_and_is_never_scoped():
    grant = grant_of(None, None, super_admin=True, scope={"connections": ["c1"]})
    assert grant.super_admin and grant.permissions == ALL
    assert in_scope(grant.scope, {"connection": "elsewhere"})


def test_only_super_admins_hold_the_super_admin_pseudo_permission():
    assert SUPER_ADMIN_ONLY not in PERMISSIONS  # so no role can carry it
    assert holds(grant_of(None, None, super_admin=True), SUPER_ADMIN_ONLY)
    assert not holds(grant_of(ADMIN, BUILTIN_ROLES[ADMIN], super_admin=False), SUPER_ADMIN_ONLY)
    scoped = grant_of(OPERATOR, BUILTIN_ROLES[OPERATOR], super_admin=False, scope={"nodes": ["pve1"]})
    assert holds(scoped, "vm.start", {"node": "pve1"}) and not holds(scoped, "vm.start", {"node": "pve2"})
    assert not holds(scoped, "admin.users")


def test_a_role_grant_holds_its_permissions_and_scope():
    grant = grant_of(OPERATOR, BUILTIN_ROLES[OPERATOR], super_admin=False, scope={"nodes": ["pve1"]})
    assert not grant.super_admin and grant.permissions == BUILTIN_ROLES[OPERATOR]
    assert grant.scope == {"connections": [], "nodes": ["pve1"], "storages": [], "vms": []}


def test_no_role_holds_nothing():
    assert grant_of(None, None, super_admin=False).permissions == frozenset()


@pytest.mark.parametrize("role, granter_role, problem", [
    (VIEWER, ADMIN, None),
    (OPERATOR, ADMIN, None),
    (ADMIN, ADMIN, None),
    (SUPER_ADMIN, ADMIN, "super_admin_only"),
    (ADMIN, OPERATOR, "escalation"),
    (VIEWER, None, "escalation"),
    (SUPER_ADMIN, SUPER_ADMIN, None),
])
def test_builtin_roles_are_assignable_only_within_the_granters_permissions(role, granter_role, problem):
    granter = grant_of(granter_role, BUILTIN_ROLES.get(granter_role), super_admin=granter_role == SUPER_ADMIN)
    found = assignable_problem(role, BUILTIN_ROLES[role], granter)
    assert (found[0] if found else None) == problem


def test_an_unknown_role_is_not_assignable():
    assert assignable_problem("ghost", None, Grant.of_super_admin()) == ("unknown_role", [])


def test_escalation_names_the_missing_permissions():
    granter = Grant(permissions=frozenset({"admin.rbac", "vm.view"}))
    assert escalation_problem({"vm.view"}, granter) is None
    assert escalation_problem({"vm.view", "vm.stop", "vm.start"}, granter) == ("escalation", ["vm.start", "vm.stop"])


def test_an_admin_group_member_may_hand_out_super_admin():
    assert assignable_problem(SUPER_ADMIN, BUILTIN_ROLES[SUPER_ADMIN], grant_of(VIEWER, BUILTIN_ROLES[VIEWER], True)) is None


def test_permission_diff():
    assert permission_diff(["a", "b"], ["b", "c"]) == {"added": ["c"], "removed": ["a"]}


# --- custom role fields --------------------------------------------------------------------


@pytest.mark.parametrize("name, permissions, field", [
    ("viewer", ["vm.view"], "name"),
    ("Has Upper", ["vm.view"], "name"),
    ("x", ["vm.view"], "name"),
    ("ok-name", ["vm.view", "vm.fly"], "permissions"),
    ("ok-name", [], "permissions"),
])
def test_invalid_role_fields_are_named(name, permissions, field):
    assert field in role_problems(name, "", permissions)


def test_valid_role_fields_and_partial_updates_pass():
    assert role_problems("vm-operators", "run VMs", ["vm.start", "vm.stop"]) == {}
    assert role_problems(None, None, None) == {}


# --- scopes ---------------------------------------------------------------------------------


def test_an_empty_scope_sees_everything():
    assert in_scope(None, {"connection": "c1", "node": "pve1", "storage": "local"})
    assert in_scope({"connections": [], "nodes": []}, {"connection": "any"})


@pytest.mark.parametrize("resource, visible", [
    ({"connection": "c1"}, True),
    ({"connection": "c2"}, False),
    ({"connection": "c1", "node": "pve1"}, True),
    ({"connection": "c1", "node": "pve10"}, False),  # exact ids: never a prefix match
    ({"connection": "c", "node": "pve1"}, False),
    ({"node": "pve"}, False),
    ({"storage": "anything"}, True),  # storages are not restricted by this scope
    ({}, True),
])
def test_a_scope_matches_structured_ids_exactly(resource, visible):
    scope = {"connections": ["c1"], "nodes": ["pve1"]}
    assert in_scope(scope, resource) is visible


def test_a_vm_scope_narrows_to_those_vmids():
    scope = {"vms": ["100", "101"]}
    assert in_scope(scope, {"connection": "c1", "node": "a", "vm": 100})
    assert not in_scope(scope, {"connection": "c1", "node": "a", "vm": 1000})
    assert in_scope(scope, {"connection": "c1", "storage": "local"})  # storages are not narrowed by a vm scope


def test_lists_are_filtered_by_scope():
    vms = [{"id": 1, "where": {"connection": "c1", "node": "a"}}, {"id": 2, "where": {"connection": "c2", "node": "a"}}]
    assert [vm["id"] for vm in filter_in_scope(vms, {"connections": ["c2"]}, key=lambda vm: vm["where"])] == [2]


def test_scopes_are_normalized_and_validated():
    assert normalize_scope({"nodes": ["b", "a", "a"]}) == {"connections": [], "nodes": ["a", "b"], "storages": [], "vms": []}
    assert scope_problems({"connections": ["c1"], "storages": []}) == {}
    assert set(scope_problems({"clusters": ["1"], "nodes": "pve1", "storages": [""]})) == {"clusters", "nodes", "storages"}


# --- groups -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cn", ["ldapusers", "_svc", "team-a", "a", "x" * 32, "dev_2"])
def test_valid_group_names(cn):
    assert group_problems(cn, "") == {}


@pytest.mark.parametrize("cn", ["", "Team", "9lives", "-x", "has space", "x" * 33, "cn=a,dc=b", "é"])
def test_invalid_group_names(cn):
    assert "cn" in group_problems(cn, None)


@pytest.mark.parametrize("gid, problem", [(5000, False), (9999, False), (4999, True), (10000, True)])
def test_a_given_gid_must_lie_in_the_range(gid, problem):
    assert bool(gid_problem(gid, 5000, 9999)) is problem


def test_a_gid_range_reaching_into_uid_numbers_is_cut_below_them():
    assert gid_problem(10000, 5000, 20000)
    assert free_gid(range(5000, 10000), 5000, 20000) is None


def test_free_gid_is_the_lowest_unused():
    assert free_gid([5000, 5001, 5003], 5000, 9999) == 5002
    assert free_gid([], 6000, 6001) == 6000
    assert free_gid([6000, 6001], 6000, 6001) is None
