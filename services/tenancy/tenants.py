"""The multi-tenancy switch and the tenants.

Use cases take a unit of work not yet entered (`db.unit_of_work()`) and enter it themselves;
`rbac` is the service's RpcProxy("rbac"), asked before any unit of work (SQLite: a green thread
must not yield holding a transaction). Helpers named with a session run inside the caller's.
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID, paging
from kernel.authority import require_super_admin
from kernel.envelope import utc_now
from kernel.errors import Conflict, ValidationFailed, refuse_stale_edit
from services.tenancy import domain, events, lookups, storage, views
from services.tenancy.memberships import join, leave
from services.tenancy.storage import Connection, Membership, Tenant


# --- the multi-tenancy switch ----------------------------------------------------------------

def status(uow) -> dict:
    with uow:
        return status_of(uow.session)


def enable(uow, rbac, actor) -> dict:
    """Idempotent: enabling again changes nothing and emits nothing. Super admins only."""
    require_super_admin(rbac, actor, "multi-tenancy")
    with uow:
        state = uow.session.get(storage.TenancyState, 1, with_for_update=True)
        if not state.enabled:
            _switch(state, True, actor)
            connections = storage.counts(uow.session, Connection.tenant_id, [DEFAULT_TENANT_ID])
            users = storage.counts(uow.session, Membership.tenant_id, [DEFAULT_TENANT_ID])
            uow.emit(events.multi_tenancy_enabled(actor, connections.get(DEFAULT_TENANT_ID, 0),
                                                  users.get(DEFAULT_TENANT_ID, 0)))
            uow.commit()
        return status_of(uow.session)


def disable(uow, rbac, actor) -> dict:
    """Refused while tenants other than `default` exist; idempotent like enable. Super admins only."""
    require_super_admin(rbac, actor, "multi-tenancy")
    with uow:
        state = uow.session.get(storage.TenancyState, 1, with_for_update=True)
        count = storage.tenant_count(uow.session)
        if domain.disable_refusal(count):
            raise Conflict(f"Multi-tenancy cannot be disabled while {count - 1} tenant(s) besides default exist; "
                           "delete them first.", code="tenants_exist", details={"tenants": count})
        if state.enabled:
            _switch(state, False, actor)
            uow.emit(events.multi_tenancy_disabled(actor))
            uow.commit()
        return status_of(uow.session)


def adopt_users(uow, actor, users) -> int:
    """Puts each user ({id, username}) that belongs to no tenant into `default`: users made
    before tenancy followed identity. Returns how many were adopted."""
    with uow:
        ids = [user["id"] for user in users]
        known = set(uow.session.scalars(sa.select(Membership.user_id).where(Membership.user_id.in_(ids))))
        adopted = [user for user in users if user["id"] not in known]
        for user in adopted:
            join(uow, user["id"], user.get("username"), DEFAULT_TENANT_ID, actor)
        uow.commit()
    return len(adopted)


def _switch(state, enabled, actor):
    state.enabled, state.changed_at = enabled, utc_now()
    state.changed_by, state.changed_by_name = actor.user_id, actor.username


def status_of(session) -> dict:
    return views.status(storage.state(session), storage.tenant_count(session))


# --- tenants -----------------------------------------------------------------------------------

def list_tenants(uow, tenant_ids=None, limit=50, cursor=None) -> dict:
    """Tenants, `default` first then by name; only those of `tenant_ids` when given."""
    offset = paging.offset_of(cursor)
    with uow:
        query = sa.select(Tenant)
        if tenant_ids is not None:
            query = query.where(Tenant.id.in_(tenant_ids))
        total = uow.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
        rows = list(uow.session.scalars(query.order_by(Tenant.id != DEFAULT_TENANT_ID, Tenant.name_key)
                                        .offset(offset).limit(lookups.limit_of(limit))))
        items = public_tenants(uow.session, rows)
    return paging.page_answer(items, offset, total)


def get_tenant(uow, tenant_id) -> dict:
    with uow:
        return public_tenants(uow.session, [lookups.tenant(uow.session, tenant_id)])[0]


def tenant_exists(uow, tenant_id) -> bool:
    with uow:
        return uow.session.get(Tenant, tenant_id) is not None


def create_tenant(uow, actor, name, description="") -> dict:
    fields = {"name": name, "description": description or ""}
    if problems := domain.tenant_problems(fields):
        raise ValidationFailed("The tenant has invalid fields.", details=problems)
    with uow:
        if not storage.state(uow.session).enabled:
            raise Conflict("Multi-tenancy is disabled: enable it first (POST /api/v1/tenancy/enable).",
                           code="multi_tenancy_disabled")
        _refuse_taken(uow.session, name)
        now = utc_now()
        tenant = Tenant(id=str(uuid.uuid4()), name=name.strip(), name_key=domain.name_key(name),
                        description=fields["description"], created_at=now, updated_at=now, version=1)
        uow.session.add(tenant)
        uow.emit(events.tenant_created(tenant, actor))
        lookups.commit_unique(uow, "A tenant with that name already exists.", "tenant_exists")
        return views.public_tenant(tenant, 0, 0)


def update_tenant(uow, actor, tenant_id, changes, expected_version=None) -> dict:
    """changes: name and/or description."""
    if unknown := set(changes) - {"name", "description"}:
        raise ValidationFailed("Unknown fields.", details={field: "cannot be changed" for field in unknown})
    if problems := domain.tenant_problems(changes):
        raise ValidationFailed("The tenant has invalid fields.", details=problems)
    with uow:
        tenant = lookups.tenant(uow.session, tenant_id, for_update=True)
        refuse_stale_edit("tenant", tenant.version, expected_version)
        wanted = {"name": changes["name"].strip()} if changes.get("name") is not None else {}
        if changes.get("description") is not None:
            wanted["description"] = changes["description"]
        diff = {field: {"from": getattr(tenant, field), "to": value} for field, value in wanted.items()
                if getattr(tenant, field) != value}
        if diff:
            if "name" in diff and domain.name_key(diff["name"]["to"]) != tenant.name_key:
                _refuse_taken(uow.session, diff["name"]["to"])
            for field, change in diff.items():
                setattr(tenant, field, change["to"])
            tenant.name_key = domain.name_key(tenant.name)
            tenant.version += 1
            tenant.updated_at = utc_now()
            uow.emit(events.tenant_updated(tenant, actor, diff))
            lookups.commit_unique(uow, "A tenant with that name already exists.", "tenant_exists")
        return public_tenants(uow.session, [tenant])[0]


def delete_tenant(uow, actor, tenant_id) -> None:
    """Refused for `default` and while the tenant owns connections; its memberships end
    (rbac drops its role assignments on the events)."""
    with uow:
        tenant = lookups.tenant(uow.session, tenant_id, for_update=True)
        connections = storage.counts(uow.session, Connection.tenant_id, [tenant.id]).get(tenant.id, 0)
        refusal = domain.tenant_delete_refusal(tenant.id, connections)
        if refusal == "default_tenant_protected":
            raise Conflict("The default tenant cannot be deleted.", code=refusal)
        if refusal:
            raise Conflict(f"The tenant still owns {connections} connection(s); delete or reassign them first.",
                           code=refusal, details={"connections": connections})
        members = storage.members(uow.session, tenant.id)
        for membership in members:
            leave(uow, membership, actor, events.TENANT_GONE)
        uow.session.flush()
        uow.session.delete(tenant)
        uow.emit(events.tenant_deleted(tenant, actor, len(members)))
        try:
            uow.commit()
        except IntegrityError:  # a connection or member arrived meanwhile
            raise Conflict("The tenant changed meanwhile; try again.", code="tenant_changed") from None


# --- helpers (inside a unit of work) ------------------------------------------------------------

def _refuse_taken(session, name):
    if storage.tenant_by_name(session, domain.name_key(name)):
        raise Conflict("A tenant with that name already exists.", code="tenant_exists",
                       details={"name": "already in use"})


def public_tenants(session, tenants) -> list[dict]:
    ids = [tenant.id for tenant in tenants]
    connections = storage.counts(session, Connection.tenant_id, ids)
    users = storage.counts(session, Membership.tenant_id, ids)
    return [views.public_tenant(t, connections.get(t.id, 0), users.get(t.id, 0)) for t in tenants]

