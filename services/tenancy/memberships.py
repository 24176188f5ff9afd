"""Who belongs where: a user's tenants, a tenant's members, joining and leaving.

Use cases take a unit of work not yet entered and enter it themselves; `rbac` is the service's
RpcProxy("rbac") (who administers which tenant, the authority checks of kernel/authority.py),
asked between units of work, never inside one. join and leave run inside the caller's.
"""
from __future__ import annotations

import sqlalchemy as sa

from kernel import SUPER_ADMIN_ONLY, paging
from kernel.authority import require_authority as ask_authority
from kernel.envelope import utc_now
from kernel.errors import Conflict, Forbidden, NotFound
from services.tenancy import domain, events, lookups, storage, views
from services.tenancy.storage import Membership

MEMBERS_AMONG_CHUNK = 500  # ids per IN (...) of members_among


def memberships_of(uow, user_id) -> list[dict]:
    """The user's tenants, `default` first then by name."""
    with uow:
        rows = storage.memberships_of(uow.session, user_id)
    rows.sort(key=lambda row: domain.membership_order(row[1].id, row[1].name))
    return [views.membership_of_user(membership, tenant) for membership, tenant in rows]


def is_member(uow, user_id, tenant_id) -> bool:
    with uow:
        return uow.session.get(Membership, (tenant_id, user_id)) is not None


def members_among(uow, tenant_id, user_ids) -> list[str]:
    """Those of `user_ids` that are members of the tenant (rbac's tenant view of platform-wide groups)."""
    user_ids, found = sorted(set(user_ids)), []
    with uow:
        for start in range(0, len(user_ids), MEMBERS_AMONG_CHUNK):
            chunk = user_ids[start:start + MEMBERS_AMONG_CHUNK]
            found += uow.session.scalars(sa.select(Membership.user_id).where(
                Membership.tenant_id == tenant_id, Membership.user_id.in_(chunk)))
    return sorted(found)


def get_membership(uow, tenant_id, user_id) -> dict:
    with uow:
        membership = uow.session.get(Membership, (tenant_id, user_id))
        if membership is None:
            raise _not_a_member(user_id, tenant_id)
        return views.public_membership(membership)


def list_members(uow, tenant_id, limit=50, cursor=None) -> dict:
    """Members of a tenant by username."""
    offset = paging.offset_of(cursor)
    with uow:
        lookups.tenant(uow.session, tenant_id)
        where = Membership.tenant_id == tenant_id
        total = uow.session.scalar(sa.select(sa.func.count()).select_from(Membership).where(where))
        rows = uow.session.scalars(sa.select(Membership).where(where)
                                   .order_by(Membership.username, Membership.user_id)
                                   .offset(offset).limit(lookups.limit_of(limit)))
        items = [views.public_membership(row) for row in rows]
    return paging.page_answer(items, offset, total)


def assign_user(uow, rbac, actor, tenant_id, user_id, username, role=None, make_default=False) -> tuple[dict, bool]:
    """Makes the user a member of the tenant (already one: keeps it) and, with make_default, the
    tenant their sessions start in. rbac gives them `role` there from the event, so the
    membership and its role commit together here and cannot part. Returns (membership, created).
    The actor must have authority over the user in each of their tenants and this one, and may grant `role`."""
    with uow:
        lookups.tenant(uow.session, tenant_id)
    refuse_takeover(uow, rbac, actor, tenant_id, user_id)  # first: another tenant's user is unknown here
    require_authority(uow, rbac, actor, user_id, tenant_id)
    if role and not actor.is_operator:
        rbac.check_assignable(actor.user_id, role, tenant_id, {})  # a new member is unscoped there
    with uow:
        lookups.tenant(uow.session, tenant_id)
        membership, created = join(uow, user_id, username, tenant_id, actor, role, make_default, always_emit=True)
        uow.commit()
        return views.public_membership(membership), created


def refuse_takeover(uow, rbac, actor, tenant_id, user_id) -> None:
    """Only a super admin, or someone administering every tenant the user belongs to, brings
    them into another tenant (domain.membership_change_refusal). A user in no tenant the actor
    administers (another tenant's placeholder or member, a pending user of `default`) is
    answered exactly as identity answers an unknown id."""
    if actor.is_operator:
        return
    with uow:
        user_tenants = {m.tenant_id for m, _ in storage.memberships_of(uow.session, user_id)}
    if tenant_id in user_tenants:
        return
    if rbac.authorize(actor.user_id, SUPER_ADMIN_ONLY, tenant_id):
        return
    administered = {t for t in sorted(user_tenants) if rbac.authorize(actor.user_id, "admin.users", t)}
    refusal = domain.membership_change_refusal(False, administered, user_tenants, tenant_id)
    if refusal == "not_found":
        raise NotFound("No such user.", details={"user_id": user_id})
    if refusal:
        raise Forbidden("The user also belongs to tenants you do not administer.", code=refusal,
                        details={"user_id": user_id})


def remove_user(uow, rbac, actor, tenant_id, user_id) -> None:
    """Ends a membership (rbac takes the role there away); never the user's last one. The actor must
    have authority over the user in each of their tenants."""
    with uow:
        lookups.tenant(uow.session, tenant_id)
        if uow.session.get(Membership, (tenant_id, user_id)) is None:  # as before: nothing to authorize
            raise _not_a_member(user_id, tenant_id)
    require_authority(uow, rbac, actor, user_id, tenant_id)
    with uow:
        lookups.tenant(uow.session, tenant_id)
        mine = {m.tenant_id: m for m, _ in storage.memberships_of(uow.session, user_id, for_update=True)}
        refusal = domain.removal_refusal(set(mine), tenant_id)
        if refusal == "not_a_member":
            raise NotFound("The user is not a member of that tenant.", code=refusal,
                           details={"user_id": user_id, "tenant_id": tenant_id})
        if refusal:
            raise Conflict("This is the user's only tenant: a user always belongs to one. Assign them "
                           "to another tenant first.", code=refusal, details={"tenant_id": tenant_id})
        leave(uow, mine[tenant_id], actor, events.REMOVED)
        uow.commit()


def require_authority(uow, rbac, actor, user_id, tenant_id) -> None:
    """The authority rule (docs/security.md), asked of rbac with every tenant the user belongs to here
    and the one being changed."""
    with uow:
        tenants = {membership.tenant_id for membership, _ in storage.memberships_of(uow.session, user_id)}
    ask_authority(rbac, actor, user_id, tenants | {tenant_id})


# --- helpers (inside a unit of work) ------------------------------------------------------------

def join(uow, user_id, username, tenant_id, actor, role=None, make_default=False, always_emit=False):
    """Adds or keeps the membership; returns (membership, created). Emits user_assigned_to_tenant
    when something changed, a role is to be given, or always_emit (an administrator's request)."""
    mine = {m.tenant_id: m for m, _ in storage.memberships_of(uow.session, user_id, for_update=True)}
    membership = mine.get(tenant_id)
    created = membership is None
    if created:
        membership = Membership(tenant_id=tenant_id, user_id=user_id, username=username,
                                is_default=not mine, created_at=utc_now())
        uow.session.add(membership)
    elif username:
        membership.username = username
    default_changed = make_default and not membership.is_default
    if default_changed:
        for other in mine.values():
            other.is_default = False
        membership.is_default = True
    if created or default_changed or role or always_emit:
        uow.session.flush()
        uow.emit(events.user_assigned_to_tenant(membership, actor, role, not created))
    return membership, created


def leave(uow, membership, actor, reason):
    """Ends one membership; another tenant of the user becomes their default if this one was."""
    uow.session.delete(membership)
    uow.session.flush()
    rest = storage.memberships_of(uow.session, membership.user_id)
    if membership.is_default and rest:
        successor = domain.next_default([(tenant.id, tenant.name) for _, tenant in rest])
        for other, _ in rest:
            other.is_default = other.tenant_id == successor
    uow.emit(events.user_removed_from_tenant(membership, actor, reason))


def _not_a_member(user_id, tenant_id) -> NotFound:
    return NotFound("The user is not a member of that tenant.", code="not_a_member",
                    details={"user_id": user_id, "tenant_id": tenant_id})
