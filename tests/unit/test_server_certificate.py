"""proxmox_sync's certificate reader (services/proxmox_sync/certificates.py) against the Proxmox VE
stand-in and against servers that do not give a certificate: the fingerprint an admin pins, the
permission asked of rbac, the URL rules, failures in words, nothing sent after the handshake, and
each handshake counted per administrator and audited (on a migrated proxmox_sync database)."""
from __future__ import annotations

import socket
import threading

import pytest

from ops.broker import free_port
import json

import sqlalchemy as sa

from services.proxmox_sync import certificates, events, pve, storage
from kernel.envelope import Actor
from kernel.errors import BadGateway, Forbidden, TooManyRequests, ValidationFailed
from tests.unit.conftest import migrated
from tests.pve_standin import PveStandin, SilentServer

ADMIN = Actor(user_id="u-admin", username="admin")


class Rbac:
    """rbac's authorize, answering `allowed` and keeping what it was asked."""

    def __init__(self, allowed=True):
        self.allowed, self.asked = allowed, []

    def authorize(self, user_id, permission, tenant_id):
        self.asked.append((user_id, permission, tenant_id))
        return self.allowed


@pytest.fixture(scope="module")
def standin():
    with PveStandin() as server:
        yield server


@pytest.fixture(autouse=True)
def database(tmp_path):
    global DB
    DB = migrated("proxmox_sync", tmp_path / "proxmox_sync.db", storage.metadata)
    yield DB
    DB.dispose()


def read(url, rbac=None, actor=ADMIN, timeout=2.0, limit=certificates.FetchLimit(100, 3600)) -> dict:
    return certificates.server_certificate(DB.unit_of_work(), rbac or Rbac(), actor, "t-1", url, limit, timeout)


def recorded() -> list[dict]:
    """The events in the outbox, oldest first."""
    with DB.engine.connect() as connection:
        rows = connection.execute(sa.select(DB.outbox.c.body).order_by(DB.outbox.c.seq)).scalars()
        return [json.loads(body) for body in rows]


def test_the_fingerprint_is_the_one_a_connection_pins_and_nothing_is_sent(standin):
    before = len(standin.calls)
    rbac = Rbac()
    answer = read(standin.url.replace("https://", "HTTPS://"), rbac)
    assert answer["fingerprint"] == standin.fingerprint.upper()
    assert answer["url"] == f"https://127.0.0.1:{standin.port}"
    assert answer["subject"] and answer["issuer"] and answer["issuer"] != answer["subject"]  # signed by its CA
    assert answer["not_before"] < answer["not_after"]
    assert rbac.asked == [("u-admin", "connection.manage", "t-1")]
    assert len(standin.calls) == before  # a handshake only: no request, no credential
    # the value pins: a connection's check accepts it
    target = pve.Endpoint(url=standin.url, verify_tls=True, ca_pem=None, fingerprint=answer["fingerprint"],
                          auth_method="token", login="x@pve!y", secret="s")
    host, port = "127.0.0.1", standin.port
    pve._check_fingerprint(target, host, port, 2.0)


def test_it_needs_connection_manage_in_the_tenant(standin):
    with pytest.raises(Forbidden) as raised:
        read(standin.url, Rbac(allowed=False))
    assert raised.value.code == "permission_denied" and raised.value.details["permission"] == "connection.manage"
    with pytest.raises(Forbidden):
        read(standin.url, Rbac(), actor=Actor(username="someone"))  # no user id, not the operator CLI
    assert read(standin.url, Rbac(allowed=False), actor=Actor(username="cli"))["fingerprint"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8006", "https://user:pw@127.0.0.1", "https://host/path",
                                 "ftp://host", "", "https://bad_host!"])
def test_addresses_the_connection_rules_refuse_are_refused_before_any_network(url):
    with pytest.raises(ValidationFailed) as raised:
        read(url)
    assert "url" in raised.value.details


def test_failures_are_in_words():
    with pytest.raises(BadGateway) as raised:
        read(f"https://127.0.0.1:{free_port()}")
    assert raised.value.code == "unreachable" and "cannot be reached" in raised.value.details["url"]
    with SilentServer() as silent, pytest.raises(BadGateway) as raised:
        read(silent.url, timeout=0.5)
    assert raised.value.code == "timeout" and "did not answer in time" in raised.value.message
    with PlainServer() as plain, pytest.raises(BadGateway) as raised:
        read(plain.url)
    assert raised.value.code == "not_tls" and "does not speak TLS" in raised.value.details["url"]


def test_each_fetch_is_audited_with_its_address_and_outcome(standin):
    read(standin.url)
    with pytest.raises(BadGateway):
        read(f"https://127.0.0.1:{free_port()}")
    fetched, failed = recorded()
    assert fetched["type"] == failed["type"] == events.CERTIFICATE_FETCHED
    assert fetched["outcome"] == "success" and failed["outcome"] == "failure"
    assert fetched["actor"]["user_id"] == "u-admin" and fetched["tenant_ids"] == ["t-1"]
    assert fetched["data"] == {"address": f"127.0.0.1:{standin.port}", "fingerprint": standin.fingerprint.upper()}
    assert failed["data"]["error"] == "unreachable" and "cannot be reached" in failed["data"]["error_message"]
    assert failed["resource"]["id"].startswith("127.0.0.1:")
    # refused before any network: nothing to record
    with pytest.raises(Forbidden):
        read(standin.url, Rbac(allowed=False))
    with pytest.raises(ValidationFailed):
        read("http://127.0.0.1")
    assert len(recorded()) == 2


def test_fetches_are_counted_per_administrator_and_refused_beyond_the_limit(standin):
    limit = certificates.FetchLimit(2, 3600)
    before = len(standin.calls)
    read(standin.url, limit=limit)
    with pytest.raises(BadGateway):
        read(f"https://127.0.0.1:{free_port()}", limit=limit)  # a failed handshake counts too
    with pytest.raises(TooManyRequests) as raised:
        read(standin.url, limit=limit)
    assert raised.value.code == "rate_limited" and raised.value.details["limit"] == "cert_fetches_per_admin"
    assert raised.value.details["retry_after"] >= 1
    assert len(recorded()) == 2  # the refused one reached nothing
    other = Actor(user_id="u-other", username="other")
    assert read(standin.url, actor=other, limit=limit)["fingerprint"]  # each administrator has their own count
    assert read(standin.url, actor=Actor(username="cli"), limit=certificates.FetchLimit(0, 3600))  # 0: no limit
    assert len(standin.calls) == before


class PlainServer:
    """Answers every connection with plain HTTP (a node's port without TLS)."""

    def __init__(self):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                conn = self._socket.accept()[0]
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._socket.close()
