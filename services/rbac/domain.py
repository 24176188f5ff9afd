"""The permission catalogue and the built-in roles; pure data and rules."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    name: str
    category: str
    description: str
    dangerous: bool = False


PERMISSIONS = {p.name: p for p in (
    Permission("vm.view", "vm", "See virtual machines and containers"),
    Permission("vm.console", "vm", "Open the console of a VM or container"),
    Permission("vm.start", "vm", "Start VMs and containers"),
    Permission("vm.stop", "vm", "Stop or shut down VMs and containers"),
    Permission("vm.restart", "vm", "Reboot VMs and containers"),
    Permission("vm.create", "vm", "Create VMs and containers"),
    Permission("vm.delete", "vm", "Delete VMs and containers", dangerous=True),
    Permission("vm.config", "vm", "Change the configuration of VMs and containers"),
    Permission("vm.snapshot", "vm", "Take, roll back and delete snapshots"),
    Permission("vm.migrate", "vm", "Migrate VMs and containers between nodes"),
    Permission("storage.view", "storage", "See storages"),
    Permission("storage.manage", "storage", "Change storages", dangerous=True),
    Permission("node.view", "node", "See nodes"),
    Permission("node.manage", "node", "Change nodes", dangerous=True),
    Permission("backup.view", "backup", "See backups"),
    Permission("backup.create", "backup", "Create backups"),
    Permission("backup.restore", "backup", "Restore backups", dangerous=True),
    Permission("connection.view", "connection", "See Proxmox connections"),
    Permission("connection.manage", "connection", "Create, change and delete Proxmox connections", dangerous=True),
    Permission("tenant.view", "tenant", "See tenants and their assignments"),
    Permission("tenant.manage", "tenant", "Create, change and delete tenants", dangerous=True),
    Permission("sync.view", "sync", "See the synchronisation status"),
    Permission("sync.run", "sync", "Start a synchronisation"),
    Permission("admin.users", "admin", "Manage users", dangerous=True),
    Permission("admin.rbac", "admin", "Manage roles, assignments and groups", dangerous=True),
    Permission("admin.audit", "admin", "Read the audit log"),
    Permission("admin.settings", "admin", "Change platform settings", dangerous=True),
)}

SUPER_ADMIN, ADMIN, OPERATOR, VIEWER = "super_admin", "admin", "operator", "viewer"

_ALL = frozenset(PERMISSIONS)
BUILTIN_ROLES = {
    SUPER_ADMIN: _ALL,
    ADMIN: _ALL - {"tenant.manage"},
    OPERATOR: _ALL - {"tenant.manage", "admin.users", "admin.rbac", "admin.settings"},
    VIEWER: frozenset(p for p in _ALL if p.endswith(".view")),
}


def permissions_of(role: str | None) -> frozenset[str]:
    return BUILTIN_ROLES.get(role or "", frozenset())


@dataclass(frozen=True)
class BuiltinGroup:
    id: str
    cn: str
    gid_number: int
    description: str
    is_admin: bool


LDAPUSERS, SYSADMINS = "ldapusers", "sysadmins"
# Seeded by the rbac migration; GIDs below FIRST_UID_NUMBER so they never equal a uidNumber.
BUILTIN_GROUPS = (
    BuiltinGroup("00000000-0000-0000-0000-000000005000", LDAPUSERS, 5000,
                 "Every user; members may log in to containers over LDAP", False),
    BuiltinGroup("00000000-0000-0000-0000-000000005001", SYSADMINS, 5001,
                 "Full administration of the platform and of Proxmox", True),
)


def assignable_problem(role: str, granter_role: str | None) -> str | None:
    """Why a user holding `granter_role` may not hand out `role`, or None.

    Built-in roles only until custom roles land; nobody grants what they do not hold.
    """
    if role not in BUILTIN_ROLES:
        return "unknown_role"
    if role == SUPER_ADMIN and granter_role != SUPER_ADMIN:
        return "super_admin_only"
    if not BUILTIN_ROLES[role] <= permissions_of(granter_role):
        return "escalation"
    return None
