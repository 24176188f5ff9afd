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


def _identity_idn_migration():
    return importlib.import_module("services.identity.migrations.versions.e4b7c2a9d1f3_idn_email_domains_in_ascii_form")


def test_idn_email_conversion_keeps_what_the_rule_cannot_hold():
    convert = _identity_idn_migration().converted_email
    assert convert("ada@exämple.com") == "ada@xn--exmple-cua.com"
    assert convert("ada@example.com") is None  # ASCII already
    assert convert("ada@xn--exmple-cua.com") is None
    assert convert("jörg@exämple.com") is None  # a non-ASCII local part stays as it is
    assert convert("not an address") is None and convert(None) is None


def test_identity_emails_with_idn_domains_take_their_ascii_form(tmp_path, caplog):
    """Migration e4b7c2a9d1f3: users' and invitations' Unicode domains become ASCII (IDNA); a user
    whose converted address another account holds keeps theirs (logged)."""
    import datetime

    from alembic import command
    from sqlalchemy.orm import Session

    from services.identity.models import Invitation, User
    from tests.unit.test_identity_users import add_user

    url = f"sqlite:///{tmp_path / 'identity.sqlite'}"
    cfg = migrate._alembic("identity", url)
    try:
        command.upgrade(cfg, "d7a1e0c4b9f2")
    finally:
        cfg.attributes["engine"].dispose()
    engine = create_engine(url)
    with Session(engine) as session:
        emails = {"ada": "ada@exämple.com", "jorg": "jörg@exämple.com", "bob": "bob@bücher.de",
                  "bob2": "bob@xn--bcher-kva.de", "plain": "plain@example.com"}
        for username, email in emails.items():
            user = add_user(session, username, "F", "L")
            user.email = email
            user.refresh_search_text()
        now = datetime.datetime.now(datetime.timezone.utc)
        session.add(Invitation(id="i-1", email="new@exämple.com", role="viewer", tenant_id="default",
                               status="pending", created_at=now, expires_at=now))
        session.commit()
    engine.dispose()
    with caplog.at_level("WARNING"):
        migrate.upgrade("identity", url)
    engine = create_engine(url)
    with Session(engine) as session:
        stored = {user.username: (user.email, user.search_text, user.version) for user in session.query(User)}
        invitation = session.get(Invitation, "i-1").email
    engine.dispose()
    assert stored["ada"] == ("ada@xn--exmple-cua.com", "ada f l ada@xn--exmple-cua.com", 2)
    assert stored["jorg"][0] == "jörg@exämple.com" and stored["jorg"][2] == 1
    assert stored["bob"][0] == "bob@bücher.de"  # its ASCII form is bob2's: skipped, logged
    assert "bob@xn--bcher-kva.de" in caplog.text
    assert stored["plain"][0] == "plain@example.com"
    assert invitation == "new@xn--exmple-cua.com"
