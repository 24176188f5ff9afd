"""The permission catalogue and the built-in roles; pure data and rules."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from kernel import SUPER_ADMIN_ONLY  # noqa: F401 - re-exported: part of the decision vocabulary
from services.identity.domain import FIRST_UID_NUMBER


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


# Built-in roles never change through the API (only with a release), so they keep one version: their
# ETag is harmless, and an edit is refused as builtin_role_protected whatever If-Match says.
BUILTIN_ROLE_VERSION = 1


def permissions_of(role: str | None) -> frozenset[str]:
    return BUILTIN_ROLES.get(role or "", frozenset())


def role_permissions(role: str | None, custom_permissions) -> frozenset[str] | None:
    """A role's permissions: a built-in one's from code, a custom one's as stored; None if there is no such role."""
    if role in BUILTIN_ROLES:
        return BUILTIN_ROLES[role]
    return None if custom_permissions is None else frozenset(custom_permissions)


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


# --- who is granting ---------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a user holds in one tenant: the input of every escalation rule."""

    role: str | None = None
    permissions: frozenset[str] = frozenset()
    super_admin: bool = False  # super_admin anywhere, or member of an administrator group
    scope: dict = field(default_factory=dict)

    @classmethod
    def of_super_admin(cls, role: str | None = SUPER_ADMIN) -> Grant:
        return cls(role=role, permissions=frozenset(PERMISSIONS), super_admin=True)


def grant_of(role: str | None, role_permissions, super_admin: bool, scope: dict | None = None) -> Grant:
    """A super admin (by role anywhere or by administrator group) holds everything, unscoped; anyone
    else never a platform-only permission, whatever a stored role says."""
    if super_admin:
        return Grant.of_super_admin(role)
    return Grant(role=role, permissions=frozenset(role_permissions or ()) - PLATFORM_ONLY,
                 scope=normalize_scope(scope))


def unknown_permissions(names) -> list[str]:
    return sorted(set(names) - set(PERMISSIONS))


def escalation_problem(permissions, granter: Grant) -> tuple[str, list[str]] | None:
    """(code, missing permissions) when `granter` may not hand out or shape a role with `permissions`."""
    if missing := sorted(set(permissions) - granter.permissions):
        return "escalation", missing
    return None


def assignable_problem(role: str, role_permissions, granter: Grant) -> tuple[str, list[str]] | None:
    """Why `granter` may not hand out `role` (holding `role_permissions`, None if no such role), or None."""
    if role_permissions is None:
        return "unknown_role", []
    if role == SUPER_ADMIN and not granter.super_admin:
        return "super_admin_only", []
    return escalation_problem(role_permissions, granter)


def permission_diff(before, after) -> dict:
    return {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after))}


# --- authority over other accounts ------------------------------------------------------

ADMIN_USERS = "admin.users"
TARGET_SUPER_ADMIN, NOT_ADMINISTERED, MORE_RIGHTS, NO_TENANT = (
    "super_admin", "not_administered", "more_rights", "no_tenant")


@dataclass(frozen=True)
class AuthorityProblem:
    """Why an actor may not act on an account: `reason` (one of the constants above), the tenants
    where it fails (for the actor's eyes only: tenants they belong to) and the permissions the target
    holds there and the actor lacks."""

    reason: str
    tenant_ids: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def scope_covers(actor_scope: dict | None, target_scope: dict | None) -> bool:
    """Whether everything the target's scope lets them reach, the actor's reaches too (empty = everything)."""
    actor_scope, target_scope = normalize_scope(actor_scope), normalize_scope(target_scope)
    return all(not actor_scope[key] or (target_scope[key] and set(target_scope[key]) <= set(actor_scope[key]))
               for key in SCOPE_KEYS)


def authority_problem(actor_grants: dict[str, Grant], target_grants: dict[str, Grant],
                      target_is_super_admin: bool, actor_is_super_admin: bool = False) -> AuthorityProblem | None:
    """The authority rule: may the actor act on the target account (edit, reset, suspend, remove, end
    sessions, unlock, 2FA actions, change role or groups, add to a tenant)? None when they may.

    actor_grants / target_grants: tenant id -> Grant, for every tenant the target belongs to (the
    actor's grant in each of those tenants; a tenant missing from actor_grants means nothing held there).
    - a super admin acts on anyone (the first admin's own protections are identity's);
    - nobody else acts on a super admin;
    - a target of no tenant is super admins' alone;
    - in every tenant of the target the actor holds admin.users, every permission the target holds
      there, and a scope at least as wide.
    """
    if actor_is_super_admin:
        return None
    if target_is_super_admin:
        return AuthorityProblem(TARGET_SUPER_ADMIN)
    if not target_grants:
        return AuthorityProblem(NO_TENANT)
    not_administered = sorted(tenant for tenant in target_grants
                              if ADMIN_USERS not in actor_grants.get(tenant, Grant()).permissions)
    if not_administered:
        return AuthorityProblem(NOT_ADMINISTERED, tuple(not_administered))
    short, missing = [], set()
    for tenant, target in sorted(target_grants.items()):
        actor = actor_grants.get(tenant, Grant())
        lacking = target.permissions - actor.permissions
        if lacking or (target.permissions and not scope_covers(actor.scope, target.scope)):  # no rights: no reach
            short.append(tenant)
            missing |= lacking
    if short:
        return AuthorityProblem(MORE_RIGHTS, tuple(short), tuple(sorted(missing)))
    return None


# --- custom roles ------------------------------------------------------------------

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")  # built-in names follow it too
DESCRIPTION_MAX = 256  # of roles and groups


def role_name_problem(name: str) -> str | None:
    if not ROLE_NAME.fullmatch(name):
        return "2-64 characters: lowercase letters, digits, '_', '.', '-', starting with a letter"
    if name in BUILTIN_ROLES:
        return "is the name of a built-in role"
    return None


def role_problems(name: str | None, description: str | None, permissions) -> dict:
    """Field -> problem for a custom role's fields (None fields are not being set)."""
    problems = {}
    if name is not None and (problem := role_name_problem(name)):
        problems["name"] = problem
    if description is not None and len(description) > DESCRIPTION_MAX:
        problems["description"] = f"at most {DESCRIPTION_MAX} characters"
    if permissions is not None:
        if unknown := unknown_permissions(permissions):
            problems["permissions"] = f"unknown permissions: {', '.join(unknown)}"
        elif platform := sorted(set(permissions) & PLATFORM_ONLY):
            problems["permissions"] = (f"{', '.join(platform)} belongs to super admins only: no role can hold it "
                                       "(platform settings are the provider's)")
        elif not permissions:
            problems["permissions"] = "a role needs at least one permission"
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


def scope_problems(scope: dict | None) -> dict:
    problems = {}
    for key, values in (scope or {}).items():
        if key not in SCOPE_KEYS:
            problems[key] = f"is not a scope; use {', '.join(SCOPE_KEYS)}"
        elif not isinstance(values, list) or not all(isinstance(v, str) and 0 < len(v) <= SCOPE_ID_MAX
                                                     for v in values):
            problems[key] = f"a list of ids (non-empty strings up to {SCOPE_ID_MAX} characters)"
        elif len(values) > SCOPE_IDS_MAX:
            problems[key] = f"at most {SCOPE_IDS_MAX} ids"
    return problems


def holds(grant: Grant, permission: str, resource: dict | None = None) -> bool:
    """The authorization decision: permission (or SUPER_ADMIN_ONLY) held, and the resource in scope."""
    if permission == SUPER_ADMIN_ONLY:
        return grant.super_admin
    return permission in grant.permissions and in_scope(grant.scope, resource)


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


# --- LDAP groups ---------------------------------------------------------------------

# A Unix group name, which is also a safe LDAP CN (no escaping needed).
GROUP_CN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def group_problems(cn: str | None, description: str | None) -> dict:
    problems = {}
    if cn is not None and not GROUP_CN.fullmatch(cn):
        problems["cn"] = "1-32 characters: lowercase letters, digits, '_', '-', not starting with a digit or '-'"
    if description is not None and len(description) > DESCRIPTION_MAX:
        problems["description"] = f"at most {DESCRIPTION_MAX} characters"
    return problems


def gid_problem(gid: int, gid_min: int, gid_max: int) -> str | None:
    """A given GID must lie in the configured range, which stays below every uidNumber."""
    upper = min(gid_max, FIRST_UID_NUMBER - 1)
    if not gid_min <= gid <= upper:
        return f"must be between {gid_min} and {upper}"
    return None


def free_gid(taken, gid_min: int, gid_max: int) -> int | None:
    """The lowest GID of the range no group uses, or None when the range is full."""
    taken = set(taken)
    for gid in range(gid_min, min(gid_max, FIRST_UID_NUMBER - 1) + 1):
        if gid not in taken:
            return gid
    return None

