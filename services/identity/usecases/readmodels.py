"""Identity's read models: the user list and the user's tenants, and the handlers that keep the
roles and memberships other services own (rbac's role_assigned/unassigned, tenancy's memberships).

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

from contracts.events import payload_of
from kernel import DEFAULT_TENANT_ID, paging
from kernel.errors import ValidationFailed
from services.identity import domain, storage, storage_tenants, views
from services.identity.models import Membership, UserRole
from services.identity.usecases import accounts


def track_role(uow, event, unassigned: bool):
    """The user list's role column: one query sorts and pages users with their role."""
    change = payload_of(event)  # RoleAssigned or RoleUnassigned
    role = None if unassigned else change.role
    row = uow.session.get(UserRole, (change.user_id, change.tenant_id))
    if row is None:
        uow.session.add(UserRole(user_id=change.user_id, tenant_id=change.tenant_id, role=role,
                                 as_of=event.occurred_at))
    elif row.as_of <= event.occurred_at:  # events of one user may be handled out of order
        row.role, row.as_of = role, event.occurred_at


def track_membership(uow, event, assigned: bool):
    """Which tenants a user belongs to: the user list shows a tenant's members, sign-in
    starts a session in one of the user's tenants."""
    change = payload_of(event)  # UserAssignedToTenant or UserRemovedFromTenant
    row = uow.session.get(Membership, (change.user_id, change.tenant_id))
    if row is not None and row.as_of > event.occurred_at:  # a later change was applied already
        return
    if assigned:
        storage_tenants.join_tenant(uow.session, change.user_id, change.tenant_id, event.occurred_at,
                                    is_default=bool(getattr(change, "is_default", False)), confirmed=True)
    elif row is not None:
        storage_tenants.leave_tenant(uow.session, row, event.occurred_at)
    else:  # removed before identity heard of it: remember, so the late assignment changes nothing
        uow.session.add(Membership(user_id=change.user_id, tenant_id=change.tenant_id, member=False,
                                   is_default=False, confirmed=True, as_of=event.occurred_at))


def user_tenants(uow, user_id):
    """The tenants a user belongs to (identity's read model), `default` first; NotFound for no such user."""
    with uow:
        accounts.load_user(uow, user_id)
        return [row.tenant_id for row in storage_tenants.memberships_of(uow.session, user_id)]


def get_user(uow, user_id, tenant_id=DEFAULT_TENANT_ID):
    with uow:
        user = accounts.load_user(uow, user_id)
        return views.admin_user(uow.session, user, storage.role_of(uow.session, user_id, tenant_id))


def list_users(uow, tenant_id=DEFAULT_TENANT_ID, q=None, status=None, role=None, sort="created_at",
               order="desc", limit=50, cursor=None, with_tenants=False):
    """The members of `tenant_id` (None: every user) with their role there. with_tenants (the
    cross-tenant view) adds each user's tenants with their role in each, and invitation_status."""
    problems = {}
    if status is not None and status not in domain.STATUSES:
        problems["status"] = f"must be one of {', '.join(domain.STATUSES)}"
    if sort not in domain.USER_SORTS:
        problems["sort"] = f"must be one of {', '.join(domain.USER_SORTS)}"
    if order not in domain.ORDERS:
        problems["order"] = "must be asc or desc"
    if not (isinstance(limit, int) and 1 <= limit <= 200):
        problems["limit"] = "must be between 1 and 200"
    if problems:
        raise ValidationFailed("The user list query has invalid parameters.", details=problems)
    with uow:  # a cursor not of this list is refused in there
        found = storage.list_users(uow.session, tenant_id, q=q, status=status, role=role, sort=sort,
                                   order=order, limit=limit, cursor=cursor)
        items = views.admin_users(uow.session, found.rows)
        if with_tenants:
            ids = [item["id"] for item in items]
            tenants = storage_tenants.tenant_assignments(uow.session, ids)
            invited = storage_tenants.invitation_states(uow.session, ids)
            items = [{**item, "tenants": tenants[item["id"]], "invitation_status": invited.get(item["id"])}
                     for item in items]
    return paging.list_answer(items, found.next_cursor, found.total, found.total_exact)


def directory_entries(uow, user_ids=None, tenant_id=None, after=None, limit=2000):
    """INTERNAL, for proxmox_sync only (the gateway never routes here): users with a username, by id,
    with their argon2id hash for LDAP's userPassword. `user_ids` and/or `tenant_id` (members) narrow
    it; page with `after` = the answer's `next`."""
    limit = max(1, min(int(limit), 5000))
    with uow:
        items = storage.directory_people(uow.session, user_ids=user_ids, tenant_id=tenant_id, after=after,
                                         limit=limit)
    return {"items": items, "next": items[-1]["user_id"] if len(items) == limit else None}
