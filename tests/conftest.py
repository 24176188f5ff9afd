import os
import uuid

import pytest

from kernel import SERVICES
from ops.broker import LocalRabbit
from ops.slapd import Slapd
from tests.harness import Platform, free_port, postgres_for_services
from tests.mailbox import Mailbox

# Which database the integration platforms run on: `sqlite` (the default) or `postgresql`.
# The test command runs the platform's tests once on each (scripts/test).
DATABASE = os.environ.get("GATEHOUSE_TEST_DATABASE", "sqlite")
if DATABASE not in ("sqlite", "postgresql"):
    raise pytest.UsageError(f"GATEHOUSE_TEST_DATABASE={DATABASE!r}: sqlite or postgresql")


def pytest_report_header(config):
    return f"gatehouse test database: {DATABASE}"


def pytest_collection_modifyitems(config, items):
    """On PostgreSQL, the run is the second pass over what runs on a platform: the tests
    of the shared platform. Tests marked `sqlite_only` read SQLite's own storage forms."""
    if DATABASE != "postgresql":
        return
    kept, dropped = [], []
    for item in items:
        on_platform = "platform" in getattr(item, "fixturenames", ())
        (kept if on_platform and not item.get_closest_marker("sqlite_only") else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: reads SQLite's storage forms; not run on PostgreSQL")


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory):
    """A throwaway RabbitMQ on free loopback ports, for the whole session."""
    broker = LocalRabbit(tmp_path_factory.mktemp("rabbit"), free_port()).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def service_databases():
    """`databases(prefix)`: the environment giving a platform its service databases. On
    SQLite nothing (files in the platform's data folder); on PostgreSQL fresh databases
    `<prefix>_<service>` on one server for the whole session."""
    if DATABASE == "sqlite":
        yield lambda prefix: {}
        return
    with postgres_for_services("gatehouse-it-pg-") as server:
        yield lambda prefix: {f"GATEHOUSE_{name.upper()}_DB_URL": server.url(server.create_database(f"{prefix}_{name}"))
                              for name in SERVICES}


@pytest.fixture(scope="session")
def platform(rabbit, service_databases, tmp_path_factory):
    """Every service and the gateway, started once; tests use unique names."""
    running = Platform(tmp_path_factory.mktemp("platform"), rabbit.amqp_uri,
                       extra_env=service_databases("shared")).start()
    if DATABASE == "postgresql":
        assert not list((running.base_dir / "data").glob("*.db")), "a service fell back to SQLite"
    yield running
    running.stop()


@pytest.fixture
def unique():
    """A short unique suffix for usernames and emails."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def mailbox():
    """A real SMTP server on a free loopback port collecting every mail (tests/mailbox.py)."""
    server = Mailbox().start()
    yield server
    server.stop()


# --- LDAP
@pytest.fixture(scope="session")
def slapd(tmp_path_factory):
    """A throwaway OpenLDAP server (ops/slapd.py) on a free loopback port, for the whole session."""
    server = Slapd(tmp_path_factory.mktemp("slapd"), durable=False).start()
    yield server
    server.stop()
