"""Writes that span services (docs/architecture.md): rbac's part of create_user / update_user
(role, groups), asked before identity commits and applied after, and the compensation that undoes
identity's change when rbac refuses or fails then.

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from nameko.exceptions import RpcTimeout

from kernel.envelope import utc_now
from kernel.errors import NotFound, ServiceUnavailable, TransientError, ValidationFailed
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
    groups were refused gets its previous one back (rbac's, read from rbac before the write: identity's
    read model lags rbac's events; `previous_role` is ignored) before the error goes on.

    What raises here makes the caller undo identity's change, so only a write rbac refused or did
    not apply raises: a write whose outcome is unknown (the call timed out, its reply was lost, rbac
    answered request_interrupted) is decided by reading user_access again, and a read after the
    writes never raises (read again once, else the answer is what is known).
    Returns rbac's user_access when with_access (the groups' answer serves when there were groups)."""
    known = None
    if role is not None:
        known = uow.rbac.user_access(user["id"], tenant_id)  # fails: nothing of rbac's changed yet
        previous_role = role_in(known, tenant_id)
        try:
            uow.rbac.assign_role(actor, user["id"], role, tenant_id, username=user["username"])
        except Exception as error:
            if not _applied_after_all(uow, error, user, tenant_id, role=role):
                raise
        known = {**known, "roles": [entry for entry in known["roles"] if entry["tenant_id"] != tenant_id]
                 + [{"tenant_id": tenant_id, "role": role, "scope": {}}]}
    if groups:
        try:
            access = uow.rbac.add_to_groups(actor, user["id"], groups, username=user["username"],
                                            tenant_id=tenant_id)
            return access if with_access else None
        except Exception as error:
            if not _applied_after_all(uow, error, user, tenant_id, groups=groups):
                if role is not None and role != previous_role:
                    _restore_role(uow, actor, user, previous_role, tenant_id)
                raise
        if known is not None:
            known = {**known, "groups": sorted({*known["groups"], *groups})}
    return _access_after(uow, user, tenant_id, role, groups, known) if with_access else None


def role_in(access: dict, tenant_id) -> str | None:
    return next((entry["role"] for entry in access["roles"] if entry["tenant_id"] == tenant_id), None)


def unknown_outcome(error: Exception) -> bool:
    """The call may or may not have run: nameko's RpcTimeout (the kernel's ReplyLost is one), a kernel
    TransientError, or rbac's 503 request_interrupted (a redelivered request not run again)."""
    return isinstance(error, (RpcTimeout, TransientError)) or (
        isinstance(error, ServiceUnavailable) and error.code == "request_interrupted")


def _applied_after_all(uow, error, user, tenant_id, role=None, groups=None) -> bool:
    """After `error` from a write: True when rbac holds what it was asked anyway (read once)."""
    if not unknown_outcome(error):
        return False
    try:
        access = uow.rbac.user_access(user["id"], tenant_id)
    except Exception:
        log.warning("compensation: whether rbac applied the access of user %s is unknown; undoing", user["id"])
        return False
    if role is not None and role_in(access, tenant_id) != role:
        return False
    if groups and not set(groups) <= set(access["groups"]):
        return False
    log.info("rbac applied the access of user %s though its answer was lost", user["id"])
    return True


def _access_after(uow, user, tenant_id, role, groups, known) -> dict:
    """rbac's user_access after its writes succeeded: read (again once); a read never undoes them."""
    for attempt in (1, 2):
        try:
            return uow.rbac.user_access(user["id"], tenant_id)
        except Exception:
            log.warning("rbac's access of user %s could not be read (attempt %d)", user["id"], attempt)
    if known is not None:
        return known
    return {"roles": [{"tenant_id": tenant_id, "role": user.get("role"), "scope": {}}] if user.get("role") else [],
            "groups": sorted(set(groups or ()))}


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


def undo_update(uow, actor, user_id, changed, status_before, status, version) -> None:
    """Compensation of update_user: each field still holding the value this update wrote, and the
    status, take their previous values again, as long as the user is still at the `version` this
    update produced (a later writer's values stay, even when they are the same as this update's)."""
    try:
        with uow:
            user = uow.session.get(User, user_id, with_for_update=True)
            if user is None:
                return
            if user.version != version:
                log.warning("compensation: user %s changed since (version %s, not %s); left as it is",
                            user_id, user.version, version)
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
