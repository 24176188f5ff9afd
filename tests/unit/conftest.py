import pytest
import sqlalchemy as sa

from kernel import migrate
from kernel.db import ServiceDatabase, kernel_tables


@pytest.fixture
def db(tmp_path):
    """A service database on a SQLite file holding only the kernel's outbox and inbox."""
    metadata = sa.MetaData()
    kernel_tables(metadata, "svc")
    database = ServiceDatabase("svc", f"sqlite:///{tmp_path / 'svc.db'}", metadata)
    metadata.create_all(database.engine)
    yield database
    database.dispose()


def migrated(service: str, path, metadata) -> ServiceDatabase:
    """A service's database on a SQLite file, built by its migrations (as deployed)."""
    url = f"sqlite:///{path}"
    migrate.upgrade(service, url)
    return ServiceDatabase(service, url, metadata)


class FakeMemberships:
    """Tenancy's and identity's membership RPCs as rbac uses them (service.tenancy and service.identity):
    who belongs to which tenant, set by join/leave."""

    def __init__(self):
        self.tenants: dict[str, set[str]] = {}

    def join(self, user_id: str, tenant_id: str = "default") -> None:
        self.tenants.setdefault(user_id, set()).add(tenant_id)

    def leave(self, user_id: str, tenant_id: str) -> None:
        self.tenants.get(user_id, set()).discard(tenant_id)

    def memberships_of(self, user_id):
        return [{"tenant_id": tenant_id} for tenant_id in sorted(self.tenants.get(user_id, ()))]

    def members_among(self, tenant_id, user_ids):
        return sorted(u for u in set(user_ids) if tenant_id in self.tenants.get(u, ()))

    def user_tenants(self, user_id):
        from kernel.errors import NotFound
        if user_id not in self.tenants:
            raise NotFound("No such user.")
        return sorted(self.tenants[user_id])


class AllowingRbac:
    """Stands in for a service's RpcProxy("rbac") where a test is not about authority: every actor
    is a super admin and may act on anyone. Records the calls."""

    def __init__(self):
        self.calls = []

    def authorize(self, user_id, permission, tenant_id="default", resource=None):
        self.calls.append(("authorize", user_id, permission, tenant_id))
        return True

    def check_authority(self, actor_user_id, target_user_id, tenant_ids=()):
        self.calls.append(("check_authority", actor_user_id, target_user_id, tuple(tenant_ids)))

    def check_assignable(self, actor_user_id, role, tenant_id="default", scope=None):
        self.calls.append(("check_assignable", actor_user_id, role, tenant_id))


def user_created(user_id, **data) -> dict:
    """identity's user_created event for `user_id` (username the same), as rbac consumes it."""
    from kernel.envelope import SYSTEM, Event, Resource
    from services.identity import events as identity_events

    return Event(type=identity_events.USER_CREATED, source="identity", category="users", actor=SYSTEM,
                 resource=Resource("user", user_id, user_id), data={"username": user_id, **data}).to_dict()


def rbac_service(path, memberships=None):
    """rbac on a migrated SQLite database in `path`, its identity and tenancy a FakeMemberships."""
    from kernel.config import Config
    from services.rbac import storage
    from services.rbac.grant_cache import GrantCache
    from services.rbac.service import RbacService

    service = RbacService()
    service.db = migrated("rbac", path / "rbac.db", storage.metadata)
    service.config = {"GATEHOUSE": Config.from_env({"GATEHOUSE_DATA_DIR": str(path)})}
    service.identity = service.tenancy = memberships or FakeMemberships()
    service.grants = GrantCache()
    return service
