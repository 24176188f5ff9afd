"""How rbac follows identity and tenancy: the bodies of its event handlers.

Each takes the event and the unit of work the consumer opened for it (already entered, the event
claimed in the inbox; the consumer commits it after), as kernel/consumer.py runs handlers.
"""
from __future__ import annotations

import sqlalchemy as sa

from contracts.events import payload_of
from kernel import DEFAULT_TENANT_ID
from kernel.envelope import SYSTEM
from services.rbac import domain, events, storage
from services.rbac.assignments import assign
from services.rbac.groups import add
from services.rbac.storage import GroupMember, Role, RoleAssignment

# --- identity ------------------------------------------------------------------------------


def enrol_new_user(uow, event):
    """Every new user joins ldapusers; the bootstrapped first admin (locked) and the super admins an operator
    creates with the CLI are super_admin (only these events grant it: the gateway cannot ask for it)."""
    new = payload_of(event)  # UserCreated or UserRegistered
    user_id, username = event.resource.id, new.username
    add(uow, storage.group_by_cn(uow.session, domain.LDAPUSERS), user_id, username, SYSTEM)
    if getattr(new, "first_admin", False):
        assign(uow, user_id, username, DEFAULT_TENANT_ID, domain.SUPER_ADMIN, SYSTEM, lock=True)
    elif getattr(new, "super_admin", False):
        assign(uow, user_id, username, DEFAULT_TENANT_ID, domain.SUPER_ADMIN, event.actor)


def grant_invited_role(uow, event):
    accepted = payload_of(event)  # InvitationAccepted
    assign(uow, accepted.user_id, accepted.username, accepted.tenant_id or DEFAULT_TENANT_ID,
           accepted.role, event.actor)


def follow_rename(uow, event):
    """Members are listed, and mirrored to LDAP memberUid, by username: follow a rename."""
    updated = payload_of(event)  # UserUpdated
    if "username" in updated.changed:
        uow.session.execute(sa.update(GroupMember).where(GroupMember.user_id == event.resource.id)
                            .values(username=updated.profile.username))


def forget_removed_user(uow, event):
    user_id = event.resource.id
    for assignment in uow.session.scalars(sa.select(RoleAssignment).where(RoleAssignment.user_id == user_id)):
        uow.session.delete(assignment)
        uow.emit(events.role_unassigned(user_id, event.resource.name, assignment.tenant_id,
                                        assignment.role, event.actor))
    for group in storage.memberships_of(uow.session, user_id):
        uow.session.execute(sa.delete(GroupMember).where(GroupMember.group_id == group.id,
                                                         GroupMember.user_id == user_id))
        uow.emit(events.member_removed(group, user_id, event.resource.name, event.actor))


# --- tenancy -------------------------------------------------------------------------------

def grant_tenant_role(uow, event):
    """The role that came with a membership; the gateway checked that the actor may grant it.
    The first admin's locked role stays (the gateway refuses that change before, too)."""
    joined = payload_of(event)  # UserAssignedToTenant
    current = uow.session.get(RoleAssignment, (joined.user_id, joined.tenant_id))
    if joined.role and not (current and current.locked):
        assign(uow, joined.user_id, joined.username, joined.tenant_id, joined.role, event.actor,
               scope=current.scope if current else None)  # a member's scope stays


def revoke_tenant_role(uow, event):
    """A user leaving a tenant loses their role there and leaves the tenant's groups."""
    left = payload_of(event)  # UserRemovedFromTenant
    assignment = uow.session.get(RoleAssignment, (left.user_id, left.tenant_id))
    if assignment is not None and not assignment.locked:
        uow.session.delete(assignment)
        uow.emit(events.role_unassigned(left.user_id, left.username, left.tenant_id, assignment.role, event.actor))
    for group in storage.groups_of_tenant(uow.session, left.tenant_id):
        member = uow.session.get(GroupMember, (group.id, left.user_id))
        if member is not None:
            uow.session.delete(member)
            uow.emit(events.member_removed(group, member.user_id, left.username or member.username, event.actor))


def forget_deleted_tenant(uow, event):
    """A deleted tenant's role assignments, custom roles and groups go with it."""
    tenant_id = event.resource.id
    for assignment in list(uow.session.scalars(sa.select(RoleAssignment).where(RoleAssignment.tenant_id == tenant_id))):
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
