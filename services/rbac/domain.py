"""rbac's rules: grants, escalation and authority, custom roles, GIDs; pure data and rules.

The permission catalogue, built-in roles, name and scope rules are shared (contracts/rbac.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from contracts.identity import FIRST_UID_NUMBER
from contracts.rbac import (  # noqa: F401 - the shared rules, re-exported for rbac's code
    ADMIN, BUILTIN_ROLE_DESCRIPTIONS, BUILTIN_ROLES, DESCRIPTION_MAX, GROUP_CN, OPERATOR, PERMISSIONS,
    PLATFORM_ONLY, ROLE_NAME, SCOPE_ID_MAX, SCOPE_IDS_MAX, SCOPE_KEYS, SUPER_ADMIN, UNSCOPED, VIEWER, Permission,
    filter_in_scope, group_problems, in_scope, normalize_scope, role_name_problem, scope_problems)
from kernel import SUPER_ADMIN_ONLY  # noqa: F401 - re-exported: part of the decision vocabulary


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
ADMIN_RBAC = "admin.rbac"
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

def holds(grant: Grant, permission: str, resource: dict | None = None) -> bool:
    """The authorization decision: permission (or SUPER_ADMIN_ONLY) held, and the resource in scope."""
    if permission == SUPER_ADMIN_ONLY:
        return grant.super_admin
    return permission in grant.permissions and in_scope(grant.scope, resource)


# --- LDAP groups ---------------------------------------------------------------------

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

