"""Writes that span services (docs/architecture.md): rbac's part of create_user / update_user
(role, groups), asked before identity commits and applied after, and the compensation that undoes
identity's change when rbac refuses or fails then.

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

import logging

import sqlalchemy as sa

from kernel.envelope import utc_now
from kernel.errors import NotFound, ValidationFailed
from services.identity import events, ratelimit, storage_tenants
from services.identity.models import User

log = logging.getLogger(__name__)

def check_access(uow, actor, role, groups, tenant_id, scope=None) -> None:
    """Everything rbac could refuse, asked before any change so that a refusal changes nothing.
    scope: the assignment's scope once given ({} for a new user, unscoped; None: the user keeps theirs)."""
    if role is not None and not actor.is_operator:
        uow.rbac.check_assignable(actor.user_id, role, tenant_id, scope)
    if groups and (unknown := uow.rbac.unknown_groups(groups, tenant_id)):
        raise ValidationFailed("Unknown groups.", code="unknown_group",
                               details={"groups": f"no such group: {', '.join(unknown)}"})


def require_member(uow, user_id, tenant_id) -> None:
    with uow:
        if tenant_id not in {row.tenant_id for row in storage_tenants.memberships_of(uow.session, user_id)}:
            raise NotFound("No such user.", details={"user_id": user_id})


def complete_access(uow, actor, user, role, groups, tenant_id, with_access, previous_role=None) -> dict | None:
    """rbac's part, after identity's committed: the role, then the groups. A role replaced before the
    groups were refused gets `previous_role` back (None: unassigned) before the error goes on.
    Returns rbac's user_access when with_access (the groups' answer serves when there were groups)."""
    if role is not None:
        uow.rbac.assign_role(actor, user["id"], role, tenant_id, username=user["username"])
    try:
        if groups:
            access = uow.rbac.add_to_groups(actor, user["id"], groups, username=user["username"],
                                            tenant_id=tenant_id)
            return access if with_access else None
    except Exception:
        if role is not None and role != previous_role:
            _restore_role(uow, actor, user, previous_role, tenant_id)
        raise
    return uow.rbac.user_access(user["id"], tenant_id) if with_access else None


def _restore_role(uow, actor, user, previous_role, tenant_id) -> None:
    try:
        if previous_role is None:
            uow.rbac.unassign_role(actor, user["id"], tenant_id, username=user["username"])
        else:
            uow.rbac.assign_role(actor, user["id"], previous_role, tenant_id, username=user["username"])
    except Exception:  # the error that made us undo is the one the caller must see
        log.exception("compensation: the previous role of user %s could not be restored", user["id"])


def with_access(user, access, tenant_id) -> dict:
    if access is None:
        return user
    roles = {entry["tenant_id"]: entry["role"] for entry in access["roles"]}
    return {**user, "role": roles.get(tenant_id), "groups": access["groups"]}


def undo_creation(uow, actor, user_id) -> None:
    """Compensation of create_user: the account goes again, as remove_user would take it."""
    try:
        with uow:
            user = uow.session.get(User, user_id, with_for_update=True)
            if user is None:
                return
            ratelimit.emit_about(uow, user, events.user_removed(user, actor))
            uow.session.execute(sa.delete(User).where(User.id == user.id))
            uow.commit()
    except Exception:
        log.exception("compensation: the account %s could not be removed again", user_id)


def undo_update(uow, actor, user_id, changed, status_before, status) -> None:
    """Compensation of update_user: each field still holding the value this update wrote, and the
    status, take their previous values again (a later writer's values stay)."""
    try:
        with uow:
            user = uow.session.get(User, user_id, with_for_update=True)
            if user is None:
                return
            restored = {field: {"from": change["to"], "to": change["from"]} for field, change in changed.items()
                        if getattr(user, field) == change["to"]}
            status_now = user.status
            restore_status = status is not None and status != status_before and status_now == status
            if not restored and not restore_status:
                return
            for field, change in restored.items():
                setattr(user, field, change["to"])
            if restore_status:
                user.status = status_before
            user.refresh_search_text()
            user.version += 1
            user.updated_at = utc_now()
            uow.session.flush()
            if restored:
                ratelimit.emit_about(uow, user, events.user_updated(user, actor, restored))
            if restore_status:
                ratelimit.emit_about(uow, user, events.user_status_changed(user, actor, status_now, status_before))
            uow.commit()
    except Exception:
        log.exception("compensation: the change of user %s could not be undone", user_id)
