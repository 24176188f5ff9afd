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

    def check_assignable(self, actor_user_id, role, tenant_id="default"):
        self.calls.append(("check_assignable", actor_user_id, role, tenant_id))


class Directory:
    """Stands in for rbac's RpcProxy("identity") and RpcProxy("tenancy") (who belongs where):
    `tenants` maps user id -> tenant ids; unknown users belong nowhere."""

    def __init__(self, tenants=None):
        self.tenants = dict(tenants or {})

    def user_tenants(self, user_id):
        return list(self.tenants.get(user_id, ()))

    def memberships_of(self, user_id):
        return [{"tenant_id": tenant} for tenant in self.tenants.get(user_id, ())]
