"""proxmox_sync's certificate reader (services/proxmox_sync/certificates.py) against the Proxmox VE
stand-in and against servers that do not give a certificate: the fingerprint an admin pins, the
permission asked of rbac, the URL rules, failures in words, and nothing sent after the handshake."""
from __future__ import annotations

import socket
import threading

import pytest

from ops.broker import free_port
from services.proxmox_sync import certificates, pve
from kernel.envelope import Actor
from kernel.errors import BadGateway, Forbidden, ValidationFailed
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


def read(url, rbac=None, actor=ADMIN, timeout=2.0) -> dict:
    return certificates.server_certificate(rbac or Rbac(), actor, "t-1", url, timeout)


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
