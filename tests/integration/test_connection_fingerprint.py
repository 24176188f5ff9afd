"""POST /api/v1/connections/tls/fingerprint through the gateway: the certificate a Proxmox VE address
presents (proxmox_sync makes the TLS handshake), for an admin to confirm and pin; refused without
connection.manage and for addresses a connection could not have; failures in words; no request
and no credential ever reaches the server."""
from ops.broker import free_port
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
