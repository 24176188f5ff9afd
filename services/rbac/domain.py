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
