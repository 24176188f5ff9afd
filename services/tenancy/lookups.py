"""What tenancy's use cases share, inside a unit of work: a tenant or connection as the caller may see
it (another tenant's is NotFound, never Forbidden, so ids cannot be probed), a commit against unique
names, page sizes."""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from kernel.errors import Conflict, NotFound
from services.tenancy.storage import Connection, Tenant

MAX_PAGE = 200


def tenant(session, tenant_id, for_update=False) -> Tenant:
    """The tenant, or NotFound `tenant_not_found`."""
    found = session.get(Tenant, tenant_id, with_for_update=for_update) if tenant_id else None
    if found is None:
        raise NotFound("No such tenant.", code="tenant_not_found", details={"tenant_id": tenant_id})
    return found


def connection(session, connection_id, tenant_id, for_update=False) -> Connection:
    """The connection, if of the tenant asked from (None: any), or NotFound `connection_not_found`."""
    found = session.get(Connection, connection_id, with_for_update=for_update) if connection_id else None
    if found is None or (tenant_id is not None and found.tenant_id != tenant_id):
        raise NotFound("No such connection.", code="connection_not_found",
                       details={"connection_id": connection_id})
    return found


def commit_unique(uow, message, code):
    """Commit; a concurrent writer that took the same unique name first makes this a conflict."""
    try:
        uow.commit()
    except IntegrityError:
        raise Conflict(message, code=code, details={"name": "already in use"}) from None


def limit_of(limit) -> int:
    return max(1, min(int(limit or 50), MAX_PAGE))
