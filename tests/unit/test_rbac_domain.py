"""The permission catalogue and built-in roles."""
from __future__ import annotations

import pytest

from services.rbac.domain import (
    ADMIN, BUILTIN_ROLES, OPERATOR, PERMISSIONS, SUPER_ADMIN, VIEWER, Permission, permissions_of,
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


def test_admin_has_all_but_tenant_manage():
    assert permissions_of(ADMIN) == ALL - {"tenant.manage"}


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
