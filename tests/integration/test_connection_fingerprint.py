"""POST /api/v1/connections/tls/fingerprint through the gateway: the certificate a Proxmox VE address
presents (proxmox_sync makes the TLS handshake), for an admin to confirm and pin; refused without
connection.manage and for addresses a connection could not have; failures in words; no request
and no credential ever reaches the server; each fetch audited and counted per administrator."""
import uuid

import pytest

from ops.broker import free_port
from tests.harness import Platform, eventually
from tests.integration.test_connections import TOKEN_ID, TOKEN_SECRET, create, probed
from tests.integration.test_connections import admin, operator, pve  # noqa: F401 - fixtures
from tests.integration.test_rbac import error_of
from tests.integration.test_tenancy import make_user
from tests.pve_standin import SilentServer

FINGERPRINT = "/api/v1/connections/tls/fingerprint"


def test_the_fetched_fingerprint_is_the_servers_and_pins_a_working_connection(operator, pve, unique):
    before = len(pve.calls)
    answer = operator.post(FINGERPRINT, json={"url": pve.url})
    assert answer.status_code == 200, answer.text
    certificate = answer.json()
    assert certificate["fingerprint"] == pve.fingerprint.upper()
    assert certificate["url"] == pve.url and certificate["subject"] and certificate["issuer"]
    assert certificate["not_before"] < certificate["not_after"]
    assert len(pve.calls) == before  # a handshake only: nothing asked, no credential sent
    pinned = create(operator, name=f"fetched-{unique}", url=pve.url, fingerprint=certificate["fingerprint"],
                    auth={"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET})
    assert probed(operator, pinned["id"])["ok"] is True


def test_only_connection_managers_fetch_and_only_connection_addresses(platform, admin, operator, pve, unique):
    _, viewer = make_user(platform, admin, f"fv{unique}", role="viewer")
    error_of(viewer.post(FINGERPRINT, json={"url": pve.url}), 403, "permission_denied")
    for url in ("http://127.0.0.1:8006", "https://user:pw@127.0.0.1", "https://127.0.0.1/api2/json", "file:///etc/x"):
        error = error_of(operator.post(FINGERPRINT, json={"url": url}), 422, "validation_error")
        assert "url" in str(error["details"]), error
    error_of(operator.post(FINGERPRINT, json={}), 422, "validation_error")


def test_failures_are_in_words(operator):
    nowhere = error_of(operator.post(FINGERPRINT, json={"url": f"https://127.0.0.1:{free_port()}"}), 502, "unreachable")
    assert "cannot be reached" in nowhere["details"]["url"]
    with SilentServer() as silent:
        hanging = error_of(operator.post(FINGERPRINT, json={"url": silent.url}), 502, "timeout")
    assert "did not answer in time" in hanging["message"]


def test_each_fetch_is_audited_with_the_address_and_its_outcome(admin, operator, pve):
    me = operator.get("/api/v1/me").json()
    assert operator.post(FINGERPRINT, json={"url": pve.url}).status_code == 200
    closed = free_port()
    error_of(operator.post(FINGERPRINT, json={"url": f"https://127.0.0.1:{closed}"}), 502, "unreachable")

    def found():
        records = {r["outcome"]: r for r in admin.audit(action="certificate_fetched", actor_id=me["id"])
                   if r["data"]["address"] in (f"127.0.0.1:{pve.port}", f"127.0.0.1:{closed}")}
        return records if len(records) == 2 else None
    records = eventually(found, 20, 0.2, "both fetches audited")
    success, failure = records["success"], records["failure"]
    assert success["data"] == {"address": f"127.0.0.1:{pve.port}", "fingerprint": pve.fingerprint.upper()}
    assert success["tenant_ids"] == ["default"] and success["category"] == "tenancy"
    assert failure["data"]["address"] == f"127.0.0.1:{closed}" and failure["data"]["error"] == "unreachable"


@pytest.fixture(scope="module")
def limited(rabbit, service_databases, tmp_path_factory):
    """A platform of its own allowing 2 fetches per administrator and window."""
    running = Platform(tmp_path_factory.mktemp("fetches"), rabbit.add_vhost(f"fetches-{uuid.uuid4().hex[:8]}"),
                       extra_env={**service_databases("fetches"), "GATEHOUSE_CERT_FETCHES_PER_ADMIN": "2"})
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_fetches_beyond_the_administrators_limit_are_refused_before_any_network(limited, pve):
    admin = limited.admin()
    assert admin.post(FINGERPRINT, json={"url": pve.url}).status_code == 200
    error_of(admin.post(FINGERPRINT, json={"url": f"https://127.0.0.1:{free_port()}"}), 502, "unreachable")
    with SilentServer() as silent:  # the third would hang: refused before it is reached
        refused = admin.post(FINGERPRINT, json={"url": silent.url})
    error = error_of(refused, 429, "rate_limited")
    assert error["details"]["limit"] == "cert_fetches_per_admin" and int(refused.headers["Retry-After"]) >= 1
    error_of(admin.post(FINGERPRINT, json={"url": "http://127.0.0.1"}), 422, "validation_error")  # not counted, still 422
