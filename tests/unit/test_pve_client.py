"""proxmox_sync's Proxmox VE client against the stand-in: TLS modes, both sign-ins, clear failures."""
from __future__ import annotations

import dataclasses

import pytest

from ops.broker import free_port
from services.proxmox_sync import pve
from services.proxmox_sync.pve import Endpoint, PveFailure
from tests.pve_standin import PveStandin, SilentServer

TOKEN_ID, TOKEN_SECRET = "gatehouse@pve!probe", "token-secret-value"
USER, PASSWORD = "sync@pve", "sync-user-password"
# verify_tls false is one of the modes under test
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def standin():
    with PveStandin() as server:
        server.add_token(TOKEN_ID, TOKEN_SECRET)
        server.add_user(USER, PASSWORD)
        yield server


def endpoint(standin, **changes) -> Endpoint:
    base = Endpoint(url=standin.url, verify_tls=False, ca_pem=None, fingerprint=None, auth_method="token",
                    login=TOKEN_ID, secret=TOKEN_SECRET)
    return dataclasses.replace(base, **changes)


def refusal(target: Endpoint, timeout: float = 3) -> PveFailure:
    with pytest.raises(PveFailure) as raised:
        pve.probe(target, timeout)
    assert TOKEN_SECRET not in raised.value.message and PASSWORD not in raised.value.message
    return raised.value


def test_a_token_and_a_password_both_reach_the_version(standin):
    assert pve.probe(endpoint(standin)) == {"version": "8.3.2", "release": "8.3"}
    assert pve.probe(endpoint(standin, auth_method="password", login=USER, secret=PASSWORD))["release"] == "8.3"


def test_wrong_secrets_are_authentication_failures(standin):
    assert refusal(endpoint(standin, secret="wrong")).code == "authentication_failed"
    by_password = endpoint(standin, auth_method="password", login=USER, secret="wrong")
    assert refusal(by_password).code == "authentication_failed"


def test_tls_verification_uses_the_ca_or_the_fingerprint(standin):
    assert refusal(endpoint(standin, verify_tls=True)).code == "tls_verification_failed"
    assert pve.probe(endpoint(standin, verify_tls=True, ca_pem=standin.ca_pem))["version"]
    assert pve.probe(endpoint(standin, verify_tls=True, fingerprint=standin.fingerprint))["version"]
    other = ":".join(["AB"] * 32)
    assert refusal(endpoint(standin, verify_tls=True, fingerprint=other)).code == "tls_fingerprint_mismatch"


def test_the_pinned_fingerprint_guards_every_connection_of_the_session(standin):
    with pve.session(endpoint(standin, verify_tls=True, fingerprint=standin.fingerprint)) as api:
        assert isinstance(api._store["session"].get_adapter(standin.url), pve._TlsAdapter)
    with pytest.raises(PveFailure) as raised, pve.session(endpoint(standin, fingerprint=standin.fingerprint)) as api:
        pinned = endpoint(standin, fingerprint=":".join(["AB"] * 32))  # another server now
        api._store["session"].mount("https://", pve._TlsAdapter(pve._tls_context(pinned), pinned.fingerprint))
        api.version.get()
    assert raised.value.code == "tls_fingerprint_mismatch"


def test_nothing_listening_is_unreachable_and_silence_is_a_timeout():
    nothing = Endpoint(url=f"https://127.0.0.1:{free_port()}", verify_tls=False, ca_pem=None, fingerprint=None,
                       auth_method="token", login=TOKEN_ID, secret=TOKEN_SECRET)
    assert refusal(nothing).code == "unreachable"
    with SilentServer() as silent:
        assert refusal(dataclasses.replace(nothing, url=silent.url), timeout=0.5).code == "timeout"
        pinned = dataclasses.replace(nothing, url=silent.url, verify_tls=True, fingerprint=":".join(["AB"] * 32))
        assert refusal(pinned, timeout=0.5).code == "timeout"
