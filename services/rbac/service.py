"""RBAC's entrypoints: authorization decisions and the role of the first admin."""
from __future__ import annotations


from kernel import DEFAULT_TENANT_ID
from kernel.consumer import on_event
from kernel.envelope import SYSTEM, utc_now
from kernel.errors import ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.identity import events as identity_events
from services.rbac import domain, events, storage
from services.rbac.storage import RoleAssignment


class RbacService(ServiceBase):
    name = "rbac"
    db = Database(storage.metadata)

    @on_event("identity", types=[identity_events.USER_CREATED])
    def grant_first_admin(self, event, uow):
        """The bootstrapped first admin is super_admin; only that event grants it."""
        if not event.data.get("first_admin"):
            return
        assignment = uow.session.get(RoleAssignment, (event.resource.id, DEFAULT_TENANT_ID))
        if assignment is None:
            uow.session.add(RoleAssignment(user_id=event.resource.id, tenant_id=DEFAULT_TENANT_ID,
                                           role=domain.SUPER_ADMIN, assigned_at=utc_now()))
        else:
            assignment.role = domain.SUPER_ADMIN
        uow.emit(events.role_assigned(event.resource.id, event.resource.name, DEFAULT_TENANT_ID,
                                      domain.SUPER_ADMIN, SYSTEM))

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
