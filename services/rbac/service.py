"""RBAC's entrypoints: authorization decisions, role assignments, LDAP group membership."""
from __future__ import annotations

import sqlalchemy as sa

from kernel import DEFAULT_TENANT_ID
from kernel.consumer import on_event
from kernel.envelope import SYSTEM, Actor, utc_now
from kernel.errors import Forbidden, NotFound, ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.identity import events as identity_events
from services.rbac import domain, events, storage
from services.rbac.storage import GroupMember, RoleAssignment

REFUSALS = {
    "unknown_role": (ValidationFailed, "There is no role {role!r}."),
    "super_admin_only": (Forbidden, "Only a super admin can grant super_admin."),
    "escalation": (Forbidden, "You cannot grant the role {role!r}: it holds permissions you do not have."),
}


class RbacService(ServiceBase):
    name = "rbac"
    db = Database(storage.metadata)

    # --- reacting to identity ------------------------------------------------

    @on_event("identity", types=[identity_events.USER_CREATED, identity_events.USER_REGISTERED])
    def enrol_new_user(self, event, uow):
        """Every new user joins ldapusers; the bootstrapped first admin is super_admin (only that event grants it)."""
        user_id, username = event.resource.id, event.data.get("username")
        self._add_member(uow, storage.group_by_cn(uow.session, domain.LDAPUSERS), user_id, username, SYSTEM)
        if event.data.get("first_admin"):
            self._assign(uow, user_id, username, DEFAULT_TENANT_ID, domain.SUPER_ADMIN, SYSTEM, lock=True)

    @on_event("identity", types=[identity_events.INVITATION_ACCEPTED])
    def grant_invited_role(self, event, uow):
        data = event.data
        self._assign(uow, data["user_id"], data.get("username"), data.get("tenant_id") or DEFAULT_TENANT_ID,
                     data["role"], event.actor)

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

    # --- decisions -------------------------------------------------------------

    @rpc
    def effective_permissions(self, user_id, tenant_id=DEFAULT_TENANT_ID):
        with self.db.unit_of_work() as uow:
            assignment = uow.session.get(RoleAssignment, (user_id, tenant_id))
            role = assignment.role if assignment else None
        return {"role": role, "permissions": sorted(domain.permissions_of(role))}

    @rpc
    def authorize(self, user_id, permission, tenant_id=DEFAULT_TENANT_ID):
        if permission not in domain.PERMISSIONS:
            raise ValidationFailed(f"Unknown permission {permission!r}.", code="unknown_permission")
        return permission in self.effective_permissions(user_id, tenant_id)["permissions"]

    # --- assignments and groups ------------------------------------------------

    @rpc
    def check_assignable(self, actor_user_id, role, tenant_id=DEFAULT_TENANT_ID):
        """Raises unless the actor may hand out `role` in the tenant (before an invitation is sent)."""
        with self.db.unit_of_work() as uow:
            self._check_assignable(uow, actor_user_id, role, tenant_id)

    @rpc
    def assign_role(self, actor, user_id, role, tenant_id=DEFAULT_TENANT_ID, username=None):
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            self._check_assignable(uow, actor.user_id, role, tenant_id)
            self._assign(uow, user_id, username, tenant_id, role, actor)
            uow.commit()
        return {"user_id": user_id, "tenant_id": tenant_id, "role": role}

    @rpc
    def add_to_groups(self, actor, user_id, groups, username=None):
        """Adds the user to each group named by cn (already a member: unchanged)."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            found = {cn: storage.group_by_cn(uow.session, cn) for cn in groups}
            if missing := [cn for cn, group in found.items() if group is None]:
                raise ValidationFailed("Unknown groups.", code="unknown_group",
                                       details={cn: "no such group" for cn in missing})
            for group in found.values():
                self._add_member(uow, group, user_id, username, actor)
            uow.commit()
        return self.user_access(user_id)

    @rpc
    def user_access(self, user_id):
        """The user's role in each tenant and their groups."""
        with self.db.unit_of_work() as uow:
            roles = uow.session.scalars(sa.select(RoleAssignment).where(RoleAssignment.user_id == user_id))
            groups = storage.memberships_of(uow.session, user_id)
            return {"roles": [{"tenant_id": a.tenant_id, "role": a.role} for a in roles],
                    "groups": [g.cn for g in groups]}

    # --- helpers (inside a unit of work) ----------------------------------------

    @staticmethod
    def _check_assignable(uow, actor_user_id, role, tenant_id):
        granter = uow.session.get(RoleAssignment, (actor_user_id, tenant_id)) if actor_user_id else None
        problem = domain.assignable_problem(role, granter.role if granter else None)
        if problem:
            error, message = REFUSALS[problem]
            raise error(message.format(role=role), code=problem, details={"role": role})

    @staticmethod
    def _assign(uow, user_id, username, tenant_id, role, actor, lock=False):
        assignment = uow.session.get(RoleAssignment, (user_id, tenant_id))
        previous = assignment.role if assignment else None
        if assignment and assignment.locked and role != assignment.role:
            raise Forbidden("The first administrator's role cannot be changed.", code="first_admin_protected")
        if previous == role:
            return
        if assignment is None:
            assignment = RoleAssignment(user_id=user_id, tenant_id=tenant_id, role=role, locked=lock,
                                        assigned_at=utc_now())
            uow.session.add(assignment)
        else:
            assignment.role, assignment.assigned_at = role, utc_now()
        uow.emit(events.role_assigned(user_id, username, tenant_id, role, actor, previous))

    @staticmethod
    def _add_member(uow, group, user_id, username, actor):
        if group is None:
            raise NotFound("No such group.")
        if uow.session.get(GroupMember, (group.id, user_id)) is None:
            uow.session.add(GroupMember(group_id=group.id, user_id=user_id, username=username, added_at=utc_now()))
            uow.emit(events.member_added(group, user_id, username, actor))

    # --- for the gateway's user administration ------------------------------------

    @rpc
    def unknown_groups(self, cns):
        """The names among `cns` that are no group: checked before a user is created or approved."""
        with self.db.unit_of_work() as uow:
            return [cn for cn in cns if storage.group_by_cn(uow.session, cn) is None]
