import pytest
import sqlalchemy as sa

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
