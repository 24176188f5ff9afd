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
