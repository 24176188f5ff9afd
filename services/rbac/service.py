"""RBAC's entrypoints: authorization decisions, roles, role assignments, LDAP groups and membership.

Every change emits an rbac event in its unit of work: audit records it and the gateway
drops its cached decisions on it, so a change applies to the very next request. Decisions
come from each process's grant cache, checked against the grant generation on every call
(services/rbac/grant_cache.py), so every rbac instance sees a change at once too.
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID, paging
from kernel.consumer import on_event
from kernel.db import iso
from kernel.envelope import SYSTEM, Actor, utc_now
from kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed, refuse_stale_edit
from kernel.service import Database, ServiceBase, rpc
from contracts.events import identity as identity_events
from services.rbac import domain, events, storage
from services.rbac.grant_cache import ProcessGrantCache
from services.rbac.storage import Group, GroupMember, Role, RoleAssignment
from contracts.events import tenancy as tenancy_events

AUTHORITY_MESSAGES = {
    domain.TARGET_SUPER_ADMIN: "Only a super admin can act on a super admin's account.",
    domain.NOT_ADMINISTERED: "This user belongs to tenants you do not administer (admin.users): only an "
                             "administrator of all of them, or a super admin, may act on their account.",
    domain.MORE_RIGHTS: "This user holds rights you do not have: only someone whose rights cover theirs "
                        "may act on their account.",
    domain.NO_TENANT: "This user belongs to no tenant: only a super admin may act on their account.",
}
REFUSALS = {
    "unknown_role": (ValidationFailed, "There is no role {role!r}."),
    "super_admin_only": (Forbidden, "Only a super admin can grant super_admin."),
    "escalation": (Forbidden, "You cannot grant the role {role!r}: it holds permissions you do not have."),
}
MAX_PAGE = 200
GROUP_FIELDS = ("cn", "gid_number", "description", "is_admin")  # what update_group may change


class RbacService(ServiceBase):
    name = "rbac"
    db = Database(storage.metadata)
    config = Config()
    grants = ProcessGrantCache()
    # Only asked who belongs where (a group of a tenant takes only its members; the authority check of
    # rbac's own changes): tenancy's memberships, identity's read model for a user created moments ago.
    # Neither calls back here.
    tenancy = RpcProxy("tenancy")
    identity = RpcProxy("identity")

    # --- reacting to identity ------------------------------------------------

    @on_event("identity", types=[identity_events.USER_CREATED, identity_events.USER_REGISTERED])
    def enrol_new_user(self, event, uow):
        """Every new user joins ldapusers; the bootstrapped first admin (locked) and the super admins an operator
        creates with the CLI are super_admin (only these events grant it: the gateway cannot ask for it)."""
        user_id, username = event.resource.id, event.data.get("username")
        self._add_member(uow, storage.group_by_cn(uow.session, domain.LDAPUSERS), user_id, username, SYSTEM)
        if event.data.get("first_admin"):
            self._assign(uow, user_id, username, DEFAULT_TENANT_ID, domain.SUPER_ADMIN, SYSTEM, lock=True)
        elif event.data.get("super_admin"):
            self._assign(uow, user_id, username, DEFAULT_TENANT_ID, domain.SUPER_ADMIN, event.actor)

    @on_event("identity", types=[identity_events.INVITATION_ACCEPTED])
    def grant_invited_role(self, event, uow):
        data = event.data
        self._assign(uow, data["user_id"], data.get("username"), data.get("tenant_id") or DEFAULT_TENANT_ID,
                     data["role"], event.actor)

    @on_event("identity", types=[identity_events.USER_UPDATED])
    def follow_rename(self, event, uow):
        """Members are listed, and mirrored to LDAP memberUid, by username: follow a rename."""
        if "username" in event.data.get("changed", {}):
            uow.session.execute(sa.update(GroupMember).where(GroupMember.user_id == event.resource.id)
                                .values(username=event.data["profile"]["username"]))

    @on_event("identity", types=[identity_events.USER_REMOVED])
    def forget_removed_user(self, event, uow):
        user_id = event.resource.id
        for assignment in uow.session.scalars(sa.select(RoleAssignment).where(RoleAssignment.user_id == user_id)):
            uow.session.delete(assignment)
            uow.emit(events.role_unassigned(user_id, event.resource.name, assignment.tenant_id,
                                            assignment.role, event.actor))
        for group in storage.memberships_of(uow.session, user_id):
            uow.session.execute(sa.delete(GroupMember).where(GroupMember.group_id == group.id,
                                                             GroupMember.user_id == user_id))
            uow.emit(events.member_removed(group, user_id, event.resource.name, event.actor))

    # --- reacting to tenancy ---------------------------------------------------------

    @on_event("tenancy", types=[tenancy_events.USER_ASSIGNED_TO_TENANT])
    def grant_tenant_role(self, event, uow):
        """The role that came with a membership; the gateway checked that the actor may grant it.
        The first admin's locked role stays (the gateway refuses that change before, too)."""
        data = event.data
        current = uow.session.get(RoleAssignment, (data["user_id"], data["tenant_id"]))
        if data.get("role") and not (current and current.locked):
            self._assign(uow, data["user_id"], data.get("username"), data["tenant_id"], data["role"], event.actor,
                         scope=current.scope if current else None)  # a member's scope stays

    @on_event("tenancy", types=[tenancy_events.USER_REMOVED_FROM_TENANT])
    def revoke_tenant_role(self, event, uow):
        """A user leaving a tenant loses their role there and leaves the tenant's groups."""
        data = event.data
        assignment = uow.session.get(RoleAssignment, (data["user_id"], data["tenant_id"]))
        if assignment is not None and not assignment.locked:
            uow.session.delete(assignment)
            uow.emit(events.role_unassigned(data["user_id"], data.get("username"), data["tenant_id"],
                                            assignment.role, event.actor))
        for group in storage.groups_of_tenant(uow.session, data["tenant_id"]):
            member = uow.session.get(GroupMember, (group.id, data["user_id"]))
            if member is not None:
                uow.session.delete(member)
                uow.emit(events.member_removed(group, member.user_id, data.get("username") or member.username,
                                               event.actor))

    @on_event("tenancy", types=[tenancy_events.TENANT_DELETED])
    def forget_deleted_tenant(self, event, uow):
        """A deleted tenant's role assignments, custom roles and groups go with it."""
        tenant_id = event.resource.id
        for assignment in list(uow.session.scalars(sa.select(RoleAssignment)
                                                   .where(RoleAssignment.tenant_id == tenant_id))):
            uow.session.delete(assignment)
            uow.emit(events.role_unassigned(assignment.user_id, None, tenant_id, assignment.role, event.actor))
        for role in list(uow.session.scalars(sa.select(Role).where(Role.tenant_id == tenant_id))):
            uow.session.delete(role)
            uow.emit(events.role_deleted(role, event.actor))
        counts = storage.member_counts(uow.session)
        for group in storage.groups_of_tenant(uow.session, tenant_id):
            uow.session.execute(sa.delete(GroupMember).where(GroupMember.group_id == group.id))
            uow.session.delete(group)
            uow.emit(events.group_deleted(group, event.actor, counts.get(group.id, 0)))

    # --- decisions -------------------------------------------------------------

    @rpc
    def list_permissions(self):
        return [{"name": p.name, "category": p.category, "description": p.description, "dangerous": p.dangerous}
                for p in domain.PERMISSIONS.values()]

    @rpc
    def effective_permissions(self, user_id, tenant_id=DEFAULT_TENANT_ID):
        """What the user may do in the tenant: role, permissions, scope, and their groups (for the UI)."""
        with self.db.unit_of_work() as uow:
            grant = self._grant(uow.session, user_id, tenant_id)
            groups = storage.memberships_of(uow.session, user_id, tenant_id)
        return {"tenant_id": tenant_id, "role": grant.role, "super_admin": grant.super_admin,
                "permissions": sorted(grant.permissions), "scope": domain.normalize_scope(grant.scope),
                "groups": [{"cn": g.cn, "is_admin": g.is_admin} for g in groups]}

    @rpc
    def authorize(self, user_id, permission, tenant_id=DEFAULT_TENANT_ID, resource=None):
        """Whether the user holds `permission` in the tenant and, given a resource
        ({"connection": id, "node": name, "storage": id}, any subset), whether their scope covers it.
        `super_admin` asks whether the user is a super admin there."""
        if permission not in domain.PERMISSIONS and permission != domain.SUPER_ADMIN_ONLY:
            raise ValidationFailed(f"Unknown permission {permission!r}.", code="unknown_permission",
                                   details={"permission": "is not in the catalogue"})
        return domain.holds(self._current_grant(user_id, tenant_id), permission, resource)

    @rpc
    def scope_of(self, user_id, tenant_id=DEFAULT_TENANT_ID):
        """The user's scope in the tenant, for filtering lists; empty lists mean everything."""
        return domain.normalize_scope(self._current_grant(user_id, tenant_id).scope)

    def _current_grant(self, user_id, tenant_id) -> domain.Grant:
        """The grant as committed now, from this process's cache while the grant generation is unchanged.

        A plain connection, not a unit of work: the ORM session would cost more than the queries."""
        with self.db.engine.connect() as conn:
            generation = storage.grant_generation(conn)  # first: see grant_cache.py
            return self.grants.grant(generation, (user_id, tenant_id),
                                     lambda: self._grant(conn, user_id, tenant_id))

    @rpc
    def record_denial(self, actor, permission, tenant_id=DEFAULT_TENANT_ID, route=None):
        """The gateway refused a request for lack of `permission`: audited as authorization_denied."""
        with self.db.unit_of_work() as uow:
            uow.emit(events.authorization_denied(Actor.from_dict(actor), permission, tenant_id, route))
            uow.commit()

    # --- authority over other accounts ------------------------------------------------

    @rpc
    def check_authority(self, actor_user_id, target_user_id, tenant_ids=()):
        """Raises Forbidden `outside_authority` unless the actor may act on the target account
        (domain.authority_problem) in every tenant the target belongs to: `tenant_ids` (the
        memberships the caller knows) and every tenant where the target holds a role here.
        The operator CLI (no user id) is a super admin: callers let it through without asking."""
        with self.db.unit_of_work() as uow:
            self._require_authority(uow.session, actor_user_id, target_user_id, tenant_ids)

    def _require_authority(self, session, actor_user_id, target_user_id, tenant_ids=()):
        tenants = set(tenant_ids or ()) | set(session.scalars(
            sa.select(RoleAssignment.tenant_id).where(RoleAssignment.user_id == target_user_id)))
        actor_admin = self._grant(session, actor_user_id, DEFAULT_TENANT_ID).super_admin if actor_user_id else False
        target_grants = {tenant: self._grant(session, target_user_id, tenant) for tenant in sorted(tenants)}
        target_admin = self._grant(session, target_user_id, DEFAULT_TENANT_ID).super_admin
        actor_grants = {} if actor_admin else {tenant: self._grant(session, actor_user_id, tenant)
                                               for tenant in tenants}
        problem = domain.authority_problem(actor_grants, target_grants, target_admin, actor_admin)
        if problem is None:
            return
        details = {"user_id": target_user_id, "reason": problem.reason}
        if problem.reason == domain.MORE_RIGHTS:
            # tenants the actor administers: naming them and the permissions tells nothing new
            details.update(tenant_ids=list(problem.tenant_ids), permissions=list(problem.missing))
        raise Forbidden(AUTHORITY_MESSAGES[problem.reason], code="outside_authority", details=details)

    def _require_authority_over(self, actor, target_user_id, tenant_ids=()):
        """_require_authority for rbac's own changes, before their unit of work: with every tenant identity
        and tenancy know the target in (identity's read model has users made moments ago, tenancy those
        assigned moments ago)."""
        if actor.is_operator:
            return
        tenants = set(tenant_ids or ())
        tenants |= set(self.identity.user_tenants(target_user_id))  # NotFound for no such user
        tenants |= {membership["tenant_id"] for membership in self.tenancy.memberships_of(target_user_id)}
        with self.db.unit_of_work() as uow:
            self._require_authority(uow.session, actor.user_id, target_user_id, tenants)

    # --- roles -------------------------------------------------------------------

    @rpc
    def list_roles(self, tenant_id=DEFAULT_TENANT_ID):
        """Built-in roles, global custom roles and the tenant's own roles, with how many users hold each there."""
        with self.db.unit_of_work() as uow:
            counts = storage.assignment_counts(uow.session, tenant_id)
            builtins = [_builtin_role_out(name, counts.get(name, 0)) for name in domain.BUILTIN_ROLES]
            custom = [_role_out(role, counts.get(role.name, 0)) for role in storage.visible_roles(uow.session, tenant_id)]
        return builtins + custom

    @rpc
    def get_role(self, role_id, tenant_id=DEFAULT_TENANT_ID):
        with self.db.unit_of_work() as uow:
            counts = storage.assignment_counts(uow.session, tenant_id)
            if role_id in domain.BUILTIN_ROLES:
                return _builtin_role_out(role_id, counts.get(role_id, 0))
            role = self._visible_role(uow.session, role_id, tenant_id)
            return _role_out(role, counts.get(role.name, 0))

    @rpc
    def create_role(self, actor, name, permissions, description="", tenant_id=DEFAULT_TENANT_ID, is_global=False):
        """A custom role of the tenant, or a global one (super admins only); never beyond the creator's permissions."""
        actor = Actor.from_dict(actor)
        if problems := domain.role_problems(name, description, permissions):
            raise ValidationFailed("The role has invalid fields.", details=problems)
        with self.db.unit_of_work() as uow:
            granter = self._grant(uow.session, actor.user_id, tenant_id)
            if is_global and not granter.super_admin:
                raise Forbidden("Only a super admin can create global roles.", code="super_admin_only")
            self._refuse_escalation(granter, permissions)
            if taken := self._name_clash(uow.session, name, None if is_global else tenant_id):
                raise Conflict(f"A role named {name!r} already exists{taken}.", code="role_exists",
                               details={"name": "already in use"})
            now = utc_now()
            role = Role(id=str(uuid.uuid4()), name=name, tenant_id=None if is_global else tenant_id,
                        description=description or "", permissions=sorted(set(permissions)),
                        created_at=now, updated_at=now, version=1)
            uow.session.add(role)
            uow.emit(events.role_created(role, actor))
            uow.commit()
        return _role_out(role, 0)

    @rpc
    def update_role(self, actor, role_id, tenant_id=DEFAULT_TENANT_ID, description=None, permissions=None,
                    expected_version=None):
        """Changes a custom role's description and/or permissions (its name is fixed).

        expected_version: the version the caller read (If-Match); another one is refused (412).
        """
        actor = Actor.from_dict(actor)
        if problems := domain.role_problems(None, description, permissions):
            raise ValidationFailed("The role has invalid fields.", details=problems)
        with self.db.unit_of_work() as uow:
            role, granter = self._changeable_role(uow.session, actor, role_id, tenant_id)
            refuse_stale_edit("role", role.version, expected_version)
            # Neither what the role holds now nor what it will hold may exceed the editor's permissions.
            self._refuse_escalation(granter, set(role.permissions) | set(permissions or ()))
            diff = domain.permission_diff(role.permissions, role.permissions if permissions is None else permissions)
            description_changed = description is not None and description != role.description
            if diff["added"] or diff["removed"] or description_changed:
                if permissions is not None:
                    role.permissions = sorted(set(permissions))
                if description is not None:
                    role.description = description
                role.version += 1
                role.updated_at = utc_now()
                uow.emit(events.role_updated(role, actor, diff, description_changed))
                uow.commit()
            count = storage.assignment_counts(uow.session, tenant_id).get(role.name, 0)
        return _role_out(role, count)

    @rpc
    def delete_role(self, actor, role_id, tenant_id=DEFAULT_TENANT_ID):
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            role, granter = self._changeable_role(uow.session, actor, role_id, tenant_id)
            self._refuse_escalation(granter, role.permissions)
            holders = storage.assignment_counts(uow.session, role.tenant_id).get(role.name, 0)
            if holders:
                raise Conflict(f"The role {role.name!r} is assigned to {holders} user(s); reassign them first.",
                               code="role_in_use", details={"users": str(holders)})  # details cross RPC as text
            uow.session.delete(role)
            uow.emit(events.role_deleted(role, actor))
            uow.commit()

    # --- assignments ---------------------------------------------------------------

    @rpc
    def check_assignable(self, actor_user_id, role, tenant_id=DEFAULT_TENANT_ID, scope=None):
        """Raises unless the actor may hand out `role` in the tenant (before an invitation is sent),
        and, when given, with `scope` ({} or None lists: unscoped)."""
        with self.db.unit_of_work() as uow:
            self._check_assignable(uow, actor_user_id, role, tenant_id, scope)

    @rpc
    def assign_role(self, actor, user_id, role, tenant_id=DEFAULT_TENANT_ID, username=None, scope=None,
                    required_permission=None):
        """Gives the user `role` in the tenant (replacing their previous one), narrowed by `scope`.

        required_permission: a permission the actor must also hold in that tenant (the gateway
        checked it only in the actor's active tenant).
        """
        actor = Actor.from_dict(actor)
        if problems := domain.scope_problems(scope):
            raise ValidationFailed("The scope is invalid.", code="invalid_scope", details=problems)
        self._require_authority_over(actor, user_id, (tenant_id,))
        with self.db.unit_of_work() as uow:
            self._require(uow.session, actor.user_id, required_permission, tenant_id)
            current = uow.session.get(RoleAssignment, (user_id, tenant_id))
            # no scope given: the user keeps theirs (a role change never widens it by accident)
            resulting = scope if scope is not None else (current.scope if current else {})
            self._check_assignable(uow, actor.user_id, role, tenant_id, resulting)
            if current and current.role != role:  # nobody demotes a user they could not have promoted
                self._check_replaceable(uow, actor.user_id, current.role, tenant_id)
            assignment = self._assign(uow, user_id, username, tenant_id, role, actor, scope=resulting)
            uow.commit()
        return _assignment_out(assignment)

    @rpc
    def unassign_role(self, actor, user_id, tenant_id=DEFAULT_TENANT_ID, username=None, required_permission=None):
        actor = Actor.from_dict(actor)
        self._require_authority_over(actor, user_id, (tenant_id,))
        with self.db.unit_of_work() as uow:
            self._require(uow.session, actor.user_id, required_permission, tenant_id)
            assignment = uow.session.get(RoleAssignment, (user_id, tenant_id))
            if assignment is None:
                raise NotFound("The user has no role in that tenant.", code="no_assignment")
            if assignment.locked:
                raise Forbidden("The first administrator's role cannot be changed.", code="first_admin_protected")
            self._check_replaceable(uow, actor.user_id, assignment.role, tenant_id)
            uow.session.delete(assignment)
            uow.emit(events.role_unassigned(user_id, username, tenant_id, assignment.role, actor))
            uow.commit()

    @rpc
    def user_roles(self, user_id):
        with self.db.unit_of_work() as uow:
            return [_assignment_out(a) for a in uow.session.scalars(
                sa.select(RoleAssignment).where(RoleAssignment.user_id == user_id).order_by(RoleAssignment.tenant_id))]

    @rpc
    def roles_in_tenant(self, tenant_id, user_ids):
        """{user_id: role} of those users holding a role in the tenant (for member lists)."""
        with self.db.unit_of_work() as uow:
            return dict(uow.session.execute(sa.select(RoleAssignment.user_id, RoleAssignment.role).where(
                RoleAssignment.tenant_id == tenant_id, RoleAssignment.user_id.in_(list(user_ids)))).all())

    @rpc
    def user_access(self, user_id, tenant_id=None):
        """The user's role in each tenant and their groups (those seen from `tenant_id` when given)."""
        with self.db.unit_of_work() as uow:
            roles = uow.session.scalars(sa.select(RoleAssignment).where(RoleAssignment.user_id == user_id))
            groups = storage.memberships_of(uow.session, user_id, tenant_id)
            return {"roles": [{"tenant_id": a.tenant_id, "role": a.role, "scope": domain.normalize_scope(a.scope)}
                              for a in roles],
                    "groups": [g.cn for g in groups]}

    # --- for proxmox_sync (internal) ----------------------------------------------------

    @rpc
    def directory_groups(self, user_ids=None, tenant_id=None):
        """Groups with their members' ids (only those among `user_ids` when given): every group
        (LDAP's posixGroups; tenant_id None) or those a tenant's Proxmox VE mirrors (its own and
        the platform-wide ones; pass the tenant's members as user_ids). `tenant_id` of each group
        is None for a platform-wide one."""
        with self.db.unit_of_work() as uow:
            return [{"group_id": group.id, "cn": group.cn, "gid_number": group.gid_number,
                     "description": group.description, "is_admin": group.is_admin, "tenant_id": group.tenant_id,
                     "member_ids": members}
                    for group, members in storage.groups_with_members(uow.session, user_ids, tenant_id)]

    @rpc
    def access_in_tenant(self, tenant_id):
        """The rights of everyone holding a role in the tenant, and of every super admin (who holds
        everything everywhere), plus the custom roles visible there: what Proxmox ACLs are made of."""
        with self.db.unit_of_work() as uow:
            roles = {role.name: frozenset(role.permissions) for role in storage.visible_roles(uow.session, tenant_id)}
            super_admins = storage.super_admin_ids(uow.session)
            assignments = {a.user_id: a for a in uow.session.scalars(
                sa.select(RoleAssignment).where(RoleAssignment.tenant_id == tenant_id))}
        access = []
        for user_id in sorted(set(assignments) | super_admins):
            assignment = assignments.get(user_id)
            role = assignment.role if assignment else None
            grant = domain.grant_of(role, domain.role_permissions(role, roles.get(role)), user_id in super_admins,
                                    assignment.scope if assignment else None)
            access.append({"user_id": user_id, "role": grant.role, "permissions": sorted(grant.permissions),
                           "scope": domain.normalize_scope(grant.scope), "super_admin": grant.super_admin})
        return {"access": access,
                "custom_roles": [{"name": name, "permissions": sorted(permissions)} for name, permissions in roles.items()]}

    # --- groups --------------------------------------------------------------------
    #
    # A group belongs to a tenant, or is platform-wide (tenant_id NULL: the built-in ones and
    # those a super admin creates so). Every call names the caller's active tenant: it sees that
    # tenant's groups and the platform-wide ones; another tenant's group answers exactly like an
    # unknown id. Platform-wide groups change (fields and members) by super admins only, and
    # their members are shown as far as they belong to the tenant.
    #
    # Who belongs to a tenant is asked over RPC, never inside a unit of work (SQLite: a green
    # thread must not yield holding a transaction): before it, or after it with what it read.

    @rpc
    def list_groups(self, limit=50, cursor=None, tenant_id=DEFAULT_TENANT_ID):
        with self.db.unit_of_work() as uow:
            groups = storage.visible_groups(uow.session, tenant_id)
            items = [_group_out(g) for g in groups]
            counted = self._member_rows(uow.session, groups)
        counts = self._counts_seen(counted, tenant_id)
        items = [{**item, "member_count": counts.get(item["id"], 0)} for item in items]
        return paging.page(items, _limit(limit), cursor)

    @rpc
    def get_group(self, group_id, tenant_id=DEFAULT_TENANT_ID):
        with self.db.unit_of_work() as uow:
            group = self._group(uow.session, group_id, tenant_id)
            out, counted = _group_out(group), self._member_rows(uow.session, [group])
        return {**out, "member_count": self._counts_seen(counted, tenant_id).get(group_id, 0)}

    @rpc
    def create_group(self, actor, cn, gid_number=None, description="", is_admin=False, tenant_id=DEFAULT_TENANT_ID,
                     platform=False):
        """A group of the tenant, or (platform, super admins only) a platform-wide one. cn and GID
        are unique across the directory: one taken by any group is refused without naming it."""
        actor = Actor.from_dict(actor)
        problems = domain.group_problems(cn, description)
        if gid_number is not None and (problem := domain.gid_problem(gid_number, *self._gid_range())):
            problems["gid_number"] = problem
        if problems:
            raise ValidationFailed("The group has invalid fields.", details=problems)
        with self.db.unit_of_work() as uow:
            if platform:
                self._require_super_admin(uow.session, actor, "Only a super admin can create a platform-wide group.")
            if is_admin:
                self._require_super_admin(uow.session, actor, "Only a super admin can create an administrator group.")
            self._refuse_taken(uow.session, cn=cn, gid_number=gid_number)
            if gid_number is None:
                gid_number = domain.free_gid(uow.session.scalars(sa.select(Group.gid_number)), *self._gid_range())
                if gid_number is None:
                    raise Conflict("Every GID of the configured range is taken.", code="gid_range_exhausted")
            group = Group(id=str(uuid.uuid4()), tenant_id=None if platform else tenant_id, cn=cn,
                          gid_number=gid_number, description=description or "", is_admin=bool(is_admin),
                          builtin=False, created_at=utc_now())
            uow.session.add(group)
            uow.emit(events.group_created(group, actor))
            _commit_unique(uow)
        return _group_out(group, 0)

    @rpc
    def update_group(self, actor, group_id, changes, tenant_id=DEFAULT_TENANT_ID):
        """changes: any of cn, gid_number, description, is_admin. Built-in groups keep cn, GID and flag."""
        actor = Actor.from_dict(actor)
        problems = domain.group_problems(changes.get("cn"), changes.get("description"))
        if changes.get("gid_number") is not None and (
                problem := domain.gid_problem(changes["gid_number"], *self._gid_range())):
            problems["gid_number"] = problem
        if problems:
            raise ValidationFailed("The group has invalid fields.", details=problems)
        with self.db.unit_of_work() as uow:
            group = self._group(uow.session, group_id, tenant_id)
            self._check_platform_group(uow.session, actor, group)
            diff = {field: {"from": getattr(group, field), "to": value} for field, value in changes.items()
                    if field in GROUP_FIELDS and value is not None and value != getattr(group, field)}
            if group.builtin and set(diff) - {"description"}:
                raise Forbidden("A built-in group keeps its cn, GID and administrator flag.",
                                code="builtin_group_protected", details={f: "cannot change" for f in diff})
            if group.is_admin or diff.get("is_admin"):
                self._require_super_admin(uow.session, actor, "Only a super admin can change an administrator group.")
            self._refuse_taken(uow.session, cn=diff.get("cn", {}).get("to"),
                               gid_number=diff.get("gid_number", {}).get("to"))
            if diff:
                for field, change in diff.items():
                    setattr(group, field, change["to"])
                uow.emit(events.group_updated(group, actor, diff))
                _commit_unique(uow)
            out, counted = _group_out(group), self._member_rows(uow.session, [group])
        return {**out, "member_count": self._counts_seen(counted, tenant_id).get(group_id, 0)}

    @rpc
    def delete_group(self, actor, group_id, tenant_id=DEFAULT_TENANT_ID):
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            group = self._group(uow.session, group_id, tenant_id)
            if group.builtin:
                raise Forbidden(f"The built-in group {group.cn!r} cannot be deleted.", code="builtin_group_protected")
            self._check_platform_group(uow.session, actor, group)
            if group.is_admin:
                self._require_super_admin(uow.session, actor, "Only a super admin can delete an administrator group.")
            members = storage.member_counts(uow.session).get(group.id, 0)
            uow.session.execute(sa.delete(GroupMember).where(GroupMember.group_id == group.id))
            uow.session.delete(group)
            uow.emit(events.group_deleted(group, actor, members))
            uow.commit()

    @rpc
    def list_members(self, group_id, limit=50, cursor=None, tenant_id=DEFAULT_TENANT_ID):
        limit = _limit(limit)
        offset = paging.offset_of(cursor)
        with self.db.unit_of_work() as uow:
            group = self._group(uow.session, group_id, tenant_id)
            platform = group.tenant_id is None
            where = GroupMember.group_id == group.id
            ordered = sa.select(GroupMember).where(where).order_by(GroupMember.username, GroupMember.user_id)
            if platform:  # platform-wide: the members of the tenant only, sorted out below
                items = [_member_out(m) for m in uow.session.scalars(ordered)]
            else:
                total = uow.session.scalar(sa.select(sa.func.count()).select_from(GroupMember).where(where))
                items = [_member_out(m) for m in uow.session.scalars(ordered.offset(offset).limit(limit))]
        if platform:
            shown = self._tenant_members(tenant_id, [item["user_id"] for item in items])
            items = [item for item in items if item["user_id"] in shown]
            total, items = len(items), items[offset:offset + limit]
        return paging.page_answer(items, offset, total)

    @rpc
    def get_member(self, group_id, user_id, tenant_id=DEFAULT_TENANT_ID):
        seen = self._in_tenant(user_id, tenant_id)
        with self.db.unit_of_work() as uow:
            group = self._group(uow.session, group_id, tenant_id)
            member = self._member(uow.session, group, user_id, seen)
            return _member_out(member)

    @rpc
    def add_member(self, actor, group_id, user_id, username=None, tenant_id=DEFAULT_TENANT_ID):
        """Returns (membership, added): adding an existing member changes nothing. The user must be a
        member of the tenant (else 404 as for an unknown user)."""
        actor = Actor.from_dict(actor)
        seen = self._in_tenant(user_id, tenant_id)
        # Unknown (or another tenant's) group and user first, then authority: no RPC inside a unit of work.
        with self.db.unit_of_work() as uow:
            self._check_membership_change(uow.session, actor, self._group(uow.session, group_id, tenant_id))
            if not seen:
                raise _no_such_user(user_id)
        self._require_authority_over(actor, user_id, (tenant_id,))
        with self.db.unit_of_work() as uow:
            group = self._group(uow.session, group_id, tenant_id)
            self._check_membership_change(uow.session, actor, group)
            added = self._add_member(uow, group, user_id, username, actor)
            uow.commit()
            return _member_out(uow.session.get(GroupMember, (group.id, user_id))), added

    @rpc
    def remove_member(self, actor, group_id, user_id, username=None, tenant_id=DEFAULT_TENANT_ID):
        actor = Actor.from_dict(actor)
        seen = self._in_tenant(user_id, tenant_id)
        with self.db.unit_of_work() as uow:  # unknown group or member first, then authority (as add_member)
            group = self._group(uow.session, group_id, tenant_id)
            self._member(uow.session, group, user_id, seen)
            self._check_membership_change(uow.session, actor, group)
        self._require_authority_over(actor, user_id, (tenant_id,))
        with self.db.unit_of_work() as uow:
            group = self._group(uow.session, group_id, tenant_id)
            member = self._member(uow.session, group, user_id, seen)
            self._check_membership_change(uow.session, actor, group)
            uow.session.delete(member)
            uow.emit(events.member_removed(group, user_id, username or member.username, actor))
            uow.commit()

    @rpc
    def user_groups(self, user_id, tenant_id=None):
        """The user's groups: every one (tenant_id None), or those seen from the tenant."""
        with self.db.unit_of_work() as uow:
            return [_group_out(g) for g in storage.memberships_of(uow.session, user_id, tenant_id)]

    @rpc
    def add_to_groups(self, actor, user_id, groups, username=None, tenant_id=DEFAULT_TENANT_ID):
        """Adds the user to each group named by cn as seen from the tenant (its own and the
        platform-wide ones; already a member: unchanged). Another tenant's cn is unknown here."""
        actor = Actor.from_dict(actor)
        if not groups:
            return self.user_access(user_id, tenant_id)
        if not self._in_tenant(user_id, tenant_id):  # another tenant's user is unknown here, whatever the groups
            raise _no_such_user(user_id)
        self._require_authority_over(actor, user_id, (tenant_id,))
        with self.db.unit_of_work() as uow:
            found = {cn: storage.visible_group_by_cn(uow.session, cn, tenant_id) for cn in groups}
            if missing := [cn for cn, group in found.items() if group is None]:
                raise ValidationFailed("Unknown groups.", code="unknown_group",
                                       details={cn: "no such group" for cn in missing})
            joining = [group for group in found.values()
                       if uow.session.get(GroupMember, (group.id, user_id)) is None]
            for group in joining:
                self._check_membership_change(uow.session, actor, group)
            for group in joining:
                self._add_member(uow, group, user_id, username, actor)
            uow.commit()
        return self.user_access(user_id, tenant_id)

    # --- helpers (inside a unit of work) ----------------------------------------

    @staticmethod
    def _grant(db, user_id, tenant_id) -> domain.Grant:
        """What the user holds in the tenant, read in one query (db: a session or a connection)."""
        if not user_id:
            return domain.Grant()
        held = storage.grant_inputs(db, user_id, tenant_id)
        return domain.grant_of(held.role, domain.role_permissions(held.role, held.custom_permissions),
                               held.super_admin, held.scope)

    def _require(self, session, user_id, permission, tenant_id):
        if permission and permission not in self._grant(session, user_id, tenant_id).permissions:
            raise Forbidden(f"This needs the permission {permission} in the tenant {tenant_id}.",
                            code="permission_denied", details={"permission": permission, "tenant_id": tenant_id})

    def _require_super_admin(self, session, actor, message):
        if not self._grant(session, actor.user_id, DEFAULT_TENANT_ID).super_admin:
            raise Forbidden(message, code="super_admin_only")

    @staticmethod
    def _refuse_escalation(granter, permissions):
        if problem := domain.escalation_problem(permissions, granter):
            missing = problem[1]
            raise Forbidden(f"You cannot give a role permissions you do not hold: {', '.join(missing)}.",
                            code="escalation", details={"permissions": missing})

    def _check_assignable(self, uow, actor_user_id, role, tenant_id, scope=None):
        """`scope`: the assignment's scope once granted (None: not being set); a scoped granter hands
        out nothing wider than their own scope."""
        granter = self._grant(uow.session, actor_user_id, tenant_id)
        problem = domain.assignable_problem(role, _role_permissions(uow.session, role, tenant_id), granter)
        if problem:
            code, missing = problem
            error, message = REFUSALS[code]
            details = {"role": role, **({"permissions": missing} if missing else {})}
            raise error(message.format(role=role), code=code, details=details)
        if scope is not None and not granter.super_admin and not domain.scope_covers(granter.scope, scope):
            raise Forbidden("You cannot grant a scope wider than your own.", code="escalation",
                            details={"scope": f"must stay within your own scope: {granter.scope}"})

    def _check_replaceable(self, uow, actor_user_id, role, tenant_id):
        """Taking a role away needs what granting it needs; a role that no longer resolves anyone may replace."""
        if _role_permissions(uow.session, role, tenant_id) is not None:
            self._check_assignable(uow, actor_user_id, role, tenant_id)

    def _check_membership_change(self, session, actor, group):
        """Membership of an administrator group is full administration: only super admins hand it out.
        A platform-wide group's members change by super admins only."""
        if group.is_admin:
            self._require_super_admin(session, actor, f"Only a super admin can change who is in {group.cn!r}.")
        self._check_platform_group(session, actor, group)

    def _check_platform_group(self, session, actor, group):
        if group.tenant_id is None and not self._grant(session, actor.user_id, DEFAULT_TENANT_ID).super_admin:
            raise Forbidden(f"The group {group.cn!r} is platform-wide: only a super admin can change it or its "
                            "members.", code="platform_group_protected")

    def _in_tenant(self, user_id, tenant_id) -> bool:
        """Whether the user is a member of the tenant: tenancy's memberships; a user tenancy has not
        enrolled yet (created moments ago) by identity's read model, written when it was created."""
        tenants = {membership["tenant_id"] for membership in self.tenancy.memberships_of(user_id)}
        if not tenants:
            try:
                tenants = set(self.identity.user_tenants(user_id))
            except NotFound:
                return False
        return tenant_id in tenants

    def _tenant_members(self, tenant_id, user_ids) -> set[str]:
        """Those of user_ids who are members of the tenant (RPC: outside any unit of work)."""
        return set(self.tenancy.members_among(tenant_id, sorted(set(user_ids)))) if user_ids else set()

    @staticmethod
    def _member_rows(session, groups) -> tuple[dict[str, int], list[tuple[str, str]]]:
        """What member counts are made of: each group's count, and the (group, user) rows of the
        platform-wide ones among `groups` (counted as seen from a tenant by _counts_seen)."""
        counts = storage.member_counts(session)
        platform = [group.id for group in groups if group.tenant_id is None and counts.get(group.id)]
        rows = [tuple(row) for row in session.execute(sa.select(GroupMember.group_id, GroupMember.user_id)
                                                      .where(GroupMember.group_id.in_(platform)))] if platform else []
        return counts, rows

    def _counts_seen(self, counted, tenant_id) -> dict[str, int]:
        """Members of each group as seen from the tenant: a platform-wide group counts the tenant's only."""
        counts, rows = counted
        counts = dict(counts)
        if rows:
            shown = self._tenant_members(tenant_id, [user_id for _, user_id in rows])
            for group_id in {group_id for group_id, _ in rows}:
                counts[group_id] = sum(1 for gid, user_id in rows if gid == group_id and user_id in shown)
        return counts

    @staticmethod
    def _visible_role(session, role_id, tenant_id, for_update=False) -> Role:
        role = session.get(Role, role_id, with_for_update=for_update)
        if role is None or role.tenant_id not in (None, tenant_id):
            raise NotFound("No such role.", code="role_not_found")
        return role

    def _changeable_role(self, session, actor, role_id, tenant_id) -> tuple[Role, domain.Grant]:
        if role_id in domain.BUILTIN_ROLES:
            raise Forbidden("Built-in roles cannot be changed or deleted.", code="builtin_role_protected")
        role = self._visible_role(session, role_id, tenant_id, for_update=True)  # concurrent edits queue up
        granter = self._grant(session, actor.user_id, tenant_id)
        if role.tenant_id is None and not granter.super_admin:
            raise Forbidden("Only a super admin can change global roles.", code="super_admin_only")
        return role, granter

    @staticmethod
    def _name_clash(session, name, tenant_id) -> str | None:
        """Where a new role's name is already used, or None. A global name clashes with every tenant's."""
        for role in storage.roles_named(session, name):
            if role.tenant_id is None:
                return " (global)"
            if tenant_id is None or role.tenant_id == tenant_id:
                return f" in tenant {role.tenant_id}"
        return None

    @staticmethod
    def _refuse_taken(session, cn=None, gid_number=None):
        """cn and GID are unique across the directory (every tenant's groups share one LDAP tree): a
        taken one is refused with the same answer whoever holds it, naming nothing about that group."""
        if cn is not None and storage.group_by_cn(session, cn):
            raise Conflict(f"The group name {cn!r} is taken in the directory.", code="group_exists",
                           details={"cn": "already in use"})
        if gid_number is not None and session.scalar(sa.select(Group.id).where(Group.gid_number == gid_number)):
            raise Conflict(f"The GID {gid_number} is taken in the directory.", code="gid_taken",
                           details={"gid_number": "already in use"})

    def _gid_range(self) -> tuple[int, int]:
        settings = self.config["GATEHOUSE"]
        return settings.integer("GATEHOUSE_GID_MIN"), settings.integer("GATEHOUSE_GID_MAX")

    @staticmethod
    def _member(session, group, user_id, in_tenant: bool) -> GroupMember:
        """A member as seen from the tenant (in_tenant: the user belongs to it): of a platform-wide
        group, only the tenant's members."""
        member = session.get(GroupMember, (group.id, user_id))
        if member is None or (group.tenant_id is None and not in_tenant):
            raise NotFound("The user is not a member of that group.", code="not_a_member")
        return member

    @staticmethod
    def _group(session, group_id, tenant_id) -> Group:
        """The group if the tenant sees it (its own or platform-wide); another tenant's is unknown here."""
        group = session.get(Group, group_id)
        if group is None or group.tenant_id not in (None, tenant_id):
            raise NotFound("No such group.", code="group_not_found")
        return group

    @staticmethod
    def _assign(uow, user_id, username, tenant_id, role, actor, lock=False, scope=None):
        scope = domain.normalize_scope(scope)
        assignment = uow.session.get(RoleAssignment, (user_id, tenant_id))
        previous = assignment.role if assignment else None
        if assignment and assignment.locked and role != assignment.role:
            raise Forbidden("The first administrator's role cannot be changed.", code="first_admin_protected")
        if assignment and previous == role and domain.normalize_scope(assignment.scope) == scope:
            return assignment
        if assignment is None:
            assignment = RoleAssignment(user_id=user_id, tenant_id=tenant_id, role=role, locked=lock, scope=scope,
                                        assigned_at=utc_now())
            uow.session.add(assignment)
        else:
            assignment.role, assignment.scope, assignment.assigned_at = role, scope, utc_now()
        uow.emit(events.role_assigned(user_id, username, tenant_id, role, actor, previous, scope))
        return assignment

    @staticmethod
    def _add_member(uow, group, user_id, username, actor) -> bool:
        if group is None:
            raise NotFound("No such group.", code="group_not_found")
        if uow.session.get(GroupMember, (group.id, user_id)) is None:
            uow.session.add(GroupMember(group_id=group.id, user_id=user_id, username=username, added_at=utc_now()))
            uow.emit(events.member_added(group, user_id, username, actor))
            return True
        return False

    # --- for the gateway's user administration ------------------------------------

    @rpc
    def unknown_groups(self, cns, tenant_id=DEFAULT_TENANT_ID):
        """The names among `cns` that are no group seen from the tenant: checked before a user is
        created or approved (another tenant's group is unknown here)."""
        with self.db.unit_of_work() as uow:
            return [cn for cn in cns if storage.visible_group_by_cn(uow.session, cn, tenant_id) is None]


def _role_permissions(session, name, tenant_id) -> frozenset[str] | None:
    """The permissions of the role `name` as seen from the tenant; None if there is no such role."""
    role = None if name in domain.BUILTIN_ROLES else storage.custom_role(session, name, tenant_id)
    return domain.role_permissions(name, role.permissions if role else None)


def _no_such_user(user_id) -> NotFound:
    """A group of the tenant takes only its members, as do platform-wide ones seen from it: anyone
    else is answered as an unknown user (no word on whether the id exists elsewhere)."""
    return NotFound("No such user.", details={"user_id": user_id})


def _commit_unique(uow):
    """Commit; a concurrent writer that took the same cn or GID first makes this a conflict."""
    try:
        uow.commit()
    except IntegrityError:
        raise Conflict("The group's cn or GID was taken meanwhile; try again.", code="group_exists") from None


def _limit(limit) -> int:
    return max(1, min(int(limit or 50), MAX_PAGE))


def _builtin_role_out(name, user_count) -> dict:
    return {"id": name, "name": name, "description": domain.BUILTIN_ROLE_DESCRIPTIONS[name],
            "permissions": sorted(domain.BUILTIN_ROLES[name]), "builtin": True, "is_global": True, "tenant_id": None,
            "user_count": user_count, "created_at": None, "updated_at": None, "version": domain.BUILTIN_ROLE_VERSION}


def _member_out(member: GroupMember) -> dict:
    return {"user_id": member.user_id, "username": member.username, "added_at": iso(member.added_at)}


def _role_out(role, user_count) -> dict:
    return {"id": role.id, "name": role.name, "description": role.description,
            "permissions": sorted(role.permissions), "builtin": False, "is_global": role.tenant_id is None,
            "tenant_id": role.tenant_id,
            "user_count": user_count, "created_at": iso(role.created_at), "updated_at": iso(role.updated_at),
            "version": role.version}


def _assignment_out(assignment) -> dict:
    return {"user_id": assignment.user_id, "tenant_id": assignment.tenant_id, "role": assignment.role,
            "scope": domain.normalize_scope(assignment.scope), "locked": bool(assignment.locked),
            "assigned_at": iso(assignment.assigned_at)}


def _group_out(group, member_count=None) -> dict:
    out = {"id": group.id, "cn": group.cn, "gid_number": group.gid_number, "description": group.description,
           "is_admin": group.is_admin, "builtin": group.builtin, "tenant_id": group.tenant_id,
           "platform": group.tenant_id is None, "created_at": iso(group.created_at)}
    if member_count is not None:
        out["member_count"] = member_count
    return out
