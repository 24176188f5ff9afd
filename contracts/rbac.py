"""rbac's shared value rules: the permission catalogue, the built-in roles, role and group
name rules, and assignment scopes (`in_scope` is how every service decides what a scoped user sees).

Pure (stdlib only): rbac's domain imports these; proxmox_sync maps the built-in roles to Proxmox
roles and filters its inventory by scope; the gateway checks the same rules before asking rbac.
"""
from __future__ import annotations

import re
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
    Permission("admin.settings", "admin", "Change platform settings (super admins only: no tenant role holds it)",
               dangerous=True),
)}

# Platform settings (SMTP, password and 2FA policy, the directory, multi-tenancy) are the provider's:
# only super admins hold these, never a tenant's built-in or custom role.
PLATFORM_ONLY = frozenset({"admin.settings"})

SUPER_ADMIN, ADMIN, OPERATOR, VIEWER = "super_admin", "admin", "operator", "viewer"

_ALL = frozenset(PERMISSIONS)
BUILTIN_ROLES = {
    SUPER_ADMIN: _ALL,
    ADMIN: _ALL - {"tenant.manage"} - PLATFORM_ONLY,
    OPERATOR: _ALL - {"tenant.manage", "admin.users", "admin.rbac"} - PLATFORM_ONLY,
    VIEWER: frozenset(p for p in _ALL if p.endswith(".view")),
}


BUILTIN_ROLE_DESCRIPTIONS = {
    SUPER_ADMIN: "Everything, in every tenant; manages tenancy and the platform settings",
    ADMIN: "Everything inside a tenant (tenant admin); not the platform settings",
    OPERATOR: "Manages infrastructure and runs operations; no user, RBAC or settings administration",
    VIEWER: "Read-only: every view permission",
}


# --- custom roles and groups: names ---------------------------------------------------

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")  # built-in names follow it too
DESCRIPTION_MAX = 256  # of roles and groups


def role_name_problem(name: str) -> str | None:
    if not ROLE_NAME.fullmatch(name):
        return "2-64 characters: lowercase letters, digits, '_', '.', '-', starting with a letter"
    if name in BUILTIN_ROLES:
        return "is the name of a built-in role"
    return None


# A Unix group name, which is also a safe LDAP CN (no escaping needed).
GROUP_CN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def group_problems(cn: str | None, description: str | None) -> dict:
    problems = {}
    if cn is not None and not GROUP_CN.fullmatch(cn):
        problems["cn"] = "1-32 characters: lowercase letters, digits, '_', '-', not starting with a digit or '-'"
    if description is not None and len(description) > DESCRIPTION_MAX:
        problems["description"] = f"at most {DESCRIPTION_MAX} characters"
    return problems


# --- scopes --------------------------------------------------------------------------

# Assignment scope key -> the resource key it restricts (resources name their ids this way).
SCOPE_KEYS = {"connections": "connection", "nodes": "node", "storages": "storage", "vms": "vm"}
UNSCOPED = {key: [] for key in SCOPE_KEYS}
SCOPE_ID_MAX, SCOPE_IDS_MAX = 128, 500  # characters of an id, ids per key


def normalize_scope(scope: dict | None) -> dict:
    """Every key present, ids as sorted unique strings; empty lists mean everything."""
    scope = scope or {}
    return {key: sorted({str(v) for v in scope.get(key) or ()}) for key in SCOPE_KEYS}


# What an id of each scope key can be, as Proxmox VE names them: a VMID is 100 to 999999999; a node
# is a host name without dots; connection and storage ids are word characters, dots and dashes,
# starting with a letter or digit. So "*", "-1", "../x" or a 100-digit number are refused, not kept
# as a rule that silently matches nothing.
SCOPE_ID_PATTERNS = {
    "connections": re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{SCOPE_ID_MAX - 1}}}"),
    "nodes": re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"),
    "storages": re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{SCOPE_ID_MAX - 1}}}"),
    "vms": re.compile(r"[1-9][0-9]{2,8}"),
}
SCOPE_ID_WORDS = {
    "connections": "connection ids (letters, digits, '.', '_', '-'; starting with a letter or digit)",
    "nodes": "node names (letters, digits and '-', at most 63)",
    "storages": "storage ids (letters, digits, '.', '_', '-'; starting with a letter or digit)",
    "vms": "VMIDs (whole numbers from 100 to 999999999)",
}


def scope_problems(scope: dict | None) -> dict:
    problems = {}
    for key, values in (scope or {}).items():
        if key not in SCOPE_KEYS:
            problems[key] = f"is not a scope; use {', '.join(SCOPE_KEYS)}"
        elif not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems[key] = f"a list of {SCOPE_ID_WORDS[key]}"
        elif len(values) > SCOPE_IDS_MAX:
            problems[key] = f"at most {SCOPE_IDS_MAX} ids"
        elif bad := [v for v in values if not SCOPE_ID_PATTERNS[key].fullmatch(v)]:
            problems[key] = f"{bad[0][:40]!r} is not valid: a list of {SCOPE_ID_WORDS[key]}"
    return problems


def in_scope(scope: dict | None, resource: dict | None) -> bool:
    """Whether the resource ({"connection": id, "node": name, "storage": id}, any subset) is visible.

    Exact structured ids only: a scope "pve1" never matches a node "pve10".
    """
    scope = normalize_scope(scope)
    for key, resource_key in SCOPE_KEYS.items():
        allowed = scope[key]
        if allowed and resource_key in (resource or {}) and str(resource[resource_key]) not in allowed:
            return False
    return True


def filter_in_scope(resources, scope: dict | None, key=lambda r: r) -> list:
    """The resources (or items whose key(item) is a resource) the scope lets a user see."""
    return [item for item in resources if in_scope(scope, key(item))]
