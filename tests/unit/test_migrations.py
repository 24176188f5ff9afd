"""Each service's Alembic history builds exactly the schema its storage.py declares."""
import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kernel import SERVICES, migrate
from kernel.db import create_engine


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models(service, tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(service, url)
    migrate.upgrade(service, url)  # a second run is a no-op
    metadata = importlib.import_module(f"services.{service}.storage").metadata
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": f"alembic_version_{service}",
                                                         **migrate.comparison_options(conn)})
        drift = compare_metadata(context, metadata)
    engine.dispose()
    assert drift == [], f"{service}: storage.py and its migrations differ; run gatehouse db-revision {service}"
