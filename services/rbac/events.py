"""Every event rbac publishes, in one place."""
from __future__ import annotations

from kernel.envelope import Actor, Event, Resource

ROLE_ASSIGNED = "rbac.role_assigned"

ALL = (ROLE_ASSIGNED,)


def role_assigned(user_id: str, username: str | None, tenant_id: str, role: str, actor: Actor) -> Event:
    return Event(type=ROLE_ASSIGNED, source="rbac", category="rbac", actor=actor, tenant_id=tenant_id,
                 resource=Resource("user", user_id, username), data={"role": role, "tenant_id": tenant_id})
