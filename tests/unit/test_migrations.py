"""Each service's Alembic history builds exactly the schema its storage.py declares."""
import importlib

import pytest
import sqlalchemy as sa
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


def test_rbac_groups_move_into_the_default_tenant_and_built_ins_stay_platform_wide(tmp_path):
    """Migration c3a1d7e94f20: a group made before groups belonged to tenants is `default`'s; the
    grant-generation triggers of rbac_groups still bump after it (SQLite batch mode)."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'rbac.sqlite'}"
    cfg = migrate._alembic("rbac", url)
    try:
        command.upgrade(cfg, "bb56e186b39f")
    finally:
        cfg.attributes["engine"].dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO rbac_groups (id, cn, gid_number, description, is_admin, builtin, created_at) "
                             "VALUES ('g-1', 'ops', 6000, 'Operations', 0, 0, '2026-12-01 00:00:00')"))
    engine.dispose()
    migrate.upgrade("rbac", url)
    engine = create_engine(url)
    with engine.begin() as conn:
        tenants = dict(conn.execute(sa.text("SELECT cn, tenant_id FROM rbac_groups")).all())
        before = conn.execute(sa.text("SELECT value FROM rbac_grant_generation")).scalar()
        conn.execute(sa.text("UPDATE rbac_groups SET description = 'changed' WHERE id = 'g-1'"))
        after = conn.execute(sa.text("SELECT value FROM rbac_grant_generation")).scalar()
    engine.dispose()
    assert tenants == {"ops": "default", "ldapusers": None, "sysadmins": None}
    assert after == before + 1
