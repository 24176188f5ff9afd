import uuid

import pytest

from ops.broker import LocalRabbit
from ops.slapd import Slapd
from tests.harness import Platform, free_port
from tests.mailbox import Mailbox


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory):
    """A throwaway RabbitMQ on free loopback ports, for the whole session."""
    broker = LocalRabbit(tmp_path_factory.mktemp("rabbit"), free_port()).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def platform(rabbit, tmp_path_factory):
    """Every service and the gateway, started once; tests use unique names."""
    running = Platform(tmp_path_factory.mktemp("platform"), rabbit.amqp_uri).start()
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
    server = Slapd(tmp_path_factory.mktemp("slapd")).start()
    yield server
    server.stop()
