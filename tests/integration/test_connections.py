"""Proxmox VE connections through the gateway: CRUD with secrets that never come back, strict
confinement to the session's tenant, reassignment, and "test connection" against the
schema-checked Proxmox VE stand-in (tests/pve_standin.py)."""
import json

import pytest

from ops.broker import free_port
from tests.integration.test_rbac import audited, error_of
from tests.integration.test_tenancy import make_user, new_tenant
from tests.pve_standin import PveStandin, SilentServer

TOKEN_ID, TOKEN_SECRET = "gatehouse@pve!gatehouse", "5f0c7a52-secret-of-the-token"
PVE_USER, PVE_PASSWORD = "gatehouse@pve", "password-of-the-pve-user"
SECRETS = (TOKEN_SECRET, PVE_PASSWORD)


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def pve():
    with PveStandin() as server:
        server.add_token(TOKEN_ID, TOKEN_SECRET)
        server.add_user(PVE_USER, PVE_PASSWORD)
        yield server


@pytest.fixture(scope="module")
def operator(platform, admin):
    """A `default` operator (connection.view and connection.manage there, nothing beyond)."""
    return make_user(platform, admin, f"cop{free_port()}", role="operator")[1]


def body(name, url="https://pve.example.com", auth=None, **extra) -> dict:
    return {"name": name, "url": url, "auth": auth or {"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET}, **extra}


def create(api, **fields) -> dict:
    created = api.post("/api/v1/connections", json=body(**fields))
    assert created.status_code == 201, created.text
    return created.json()


def no_secret_in(text: str):
    assert not any(secret in text for secret in SECRETS), "a secret came back"


def probed(api, connection_id) -> dict:
    answer = api.post(f"/api/v1/connections/{connection_id}/test")
    assert answer.status_code == 200, answer.text
    no_secret_in(answer.text)
    return answer.json()


# --- CRUD ----------------------------------------------------------------------------------------------


def test_connections_keep_their_secrets(admin, operator, unique):
    created = operator.post("/api/v1/connections", json=body(f"pve-{unique}", "https://PVE-{}.example.com".format(unique)))
    assert created.status_code == 201, created.text
    connection = created.json()
    assert created.headers["Location"] == f"/api/v1/connections/{connection['id']}"
    no_secret_in(created.text)
    assert connection["tenant_id"] == "default" and connection["verify_tls"] is True
    assert connection["url"] == f"https://pve-{unique}.example.com:8006" and connection["realm"] == "gatehouse"
    assert connection["auth"] == {"method": "token", "token_id": TOKEN_ID, "secret_set": True}
    location = created.headers["Location"]
    fetched = operator.get(location)
    assert fetched.status_code == 200 and fetched.headers["ETag"] == '"1"'
    no_secret_in(fetched.text)
    listed = operator.get("/api/v1/connections", params={"limit": 200})
    assert connection["id"] in [c["id"] for c in listed.json()["items"]]
    no_secret_in(listed.text)

    error_of(operator.patch(location, json={"realm": "ldap"}, headers={"If-Match": '"9"'}), 412, "precondition_failed")
    edited = operator.patch(location, json={"realm": "ldap", "auth": {"token_id": "gatehouse@pve!renamed"}},
                            headers={"If-Match": '"1"'})
    assert edited.status_code == 200, edited.text
    assert edited.json()["auth"] == {"method": "token", "token_id": "gatehouse@pve!renamed", "secret_set": True}
    switched = operator.patch(location, json={"auth": {"username": PVE_USER, "password": PVE_PASSWORD}})
    assert switched.json()["auth"] == {"method": "password", "username": PVE_USER, "secret_set": True}
    no_secret_in(switched.text)

    record = audited(admin, "connection_updated", connection["id"], fields=["login", "realm"])
    assert record["data"]["changes"]["realm"] == {"from": "gatehouse", "to": "ldap"}
    audited(admin, "connection_updated", connection["id"], fields=["auth_method", "auth_secret", "login"])
    audited(admin, "connection_created", connection["id"], auth_configured=True)
    no_secret_in(json.dumps(admin.audit(resource_id=connection["id"])))

    assert operator.delete(location).status_code == 204
    error_of(operator.get(location), 404, "connection_not_found")
    audited(admin, "connection_deleted", connection["id"])


def test_bad_connections_are_refused_with_the_field_named(admin, operator, unique):
    problems = error_of(operator.post("/api/v1/connections", json=body(
        f"bad-{unique}", "http://pve.example.com", fingerprint="12:34", ca_pem="not a certificate",
        realm="1x", auth={"token_id": "no-realm", "token_secret": "s"})), 422, "validation_error")["details"]["json"]
    assert set(problems) >= {"url", "fingerprint", "ca_pem", "realm", "auth"} and "token_id" in problems["auth"]
    both = error_of(operator.post("/api/v1/connections", json=body(
        f"both-{unique}", auth={"token_id": TOKEN_ID, "token_secret": "s", "username": PVE_USER, "password": "p"})),
        422, "validation_error")
    assert "auth" in both["details"]
    unverified = error_of(operator.post("/api/v1/connections", json=body(
        f"tls-{unique}", verify_tls=False, fingerprint=":".join(["AB"] * 32))), 422, "validation_error")
    assert "verify_tls" in unverified["details"]
    missing = error_of(operator.post("/api/v1/connections", json={"name": f"m-{unique}"}), 422, "validation_error")
    assert {"url", "auth"} <= set(missing["details"]["json"])
    create(operator, name=f"dup-{unique}")
    error_of(operator.post("/api/v1/connections", json=body(f"DUP-{unique}")), 409, "connection_exists")


def test_viewers_read_and_do_not_change(platform, admin, operator, unique):
    connection = create(operator, name=f"ro-{unique}")
    _, viewer = make_user(platform, admin, f"cv{unique}", role="viewer")
    assert viewer.get(f"/api/v1/connections/{connection['id']}").status_code == 200
    error_of(viewer.post("/api/v1/connections", json=body(f"v-{unique}")), 403, "permission_denied")
    error_of(viewer.delete(f"/api/v1/connections/{connection['id']}"), 403, "permission_denied")
    error_of(viewer.post(f"/api/v1/connections/{connection['id']}/test"), 403, "permission_denied")


# --- tenants -----------------------------------------------------------------------------------------------


def test_another_tenants_connections_are_not_found(admin, operator, unique):
    tenant = new_tenant(admin, f"Conn {unique}")
    theirs = create(admin, name=f"theirs-{unique}", tenant_id=tenant["id"])
    ours = create(operator, name=f"ours-{unique}")
    assert theirs["tenant_id"] == tenant["id"]

    listed = [c["id"] for c in operator.get("/api/v1/connections", params={"limit": 200}).json()["items"]]
    assert ours["id"] in listed and theirs["id"] not in listed
    location = f"/api/v1/connections/{theirs['id']}"
    error_of(operator.get(location), 404, "connection_not_found")
    error_of(operator.patch(location, json={"name": "mine now"}), 404, "connection_not_found")
    error_of(operator.delete(location), 404, "connection_not_found")
    error_of(operator.post(f"{location}/test"), 404, "connection_not_found")
    error_of(operator.post(f"{location}/reassign", json={"tenant_id": "default"}), 403, "permission_denied")
    error_of(operator.post("/api/v1/connections", json=body(f"sneak-{unique}", tenant_id=tenant["id"])),
             403, "permission_denied")
    error_of(operator.get("/api/v1/connections", params={"tenant": tenant["id"]}), 403, "permission_denied")
    error_of(operator.get("/api/v1/connections", params={"tenant": "*"}), 403, "permission_denied")

    in_tenant = admin.get("/api/v1/connections", params={"tenant": tenant["id"]}).json()
    assert [c["id"] for c in in_tenant["items"]] == [theirs["id"]] and in_tenant["total"] == 1
    everywhere = [c["id"] for c in admin.get("/api/v1/connections", params={"tenant": "*", "limit": 200})
                  .json()["items"]]
    assert {ours["id"], theirs["id"]} <= set(everywhere)
    assert admin.get("/api/v1/tenants/" + tenant["id"]).json()["connection_count"] == 1

    moved = admin.post(f"{location}/reassign", json={"tenant_id": "default"})
    assert moved.status_code == 200 and moved.json()["tenant_id"] == "default"
    record = audited(admin, "connection_reassigned", theirs["id"])
    assert (record["data"]["from"], record["data"]["to"]) == (tenant["id"], "default")
    assert sorted(record["tenant_ids"]) == sorted([tenant["id"], "default"])
    assert operator.get(location).status_code == 200  # now in the operator's tenant
    error_of(admin.post(f"{location}/reassign", json={"tenant_id": "no-such-tenant"}), 404, "tenant_not_found")
    assert admin.delete(f"/api/v1/tenants/{tenant['id']}").status_code == 204


# --- test connection ---------------------------------------------------------------------------------------


def test_a_reachable_endpoint_with_good_credentials_answers_its_version(operator, pve, unique):
    by_token = create(operator, name=f"ok-{unique}", url=pve.url, verify_tls=False)
    assert probed(operator, by_token["id"]) == {"ok": True, "version": "8.3.2", "release": "8.3"}
    by_password = create(operator, name=f"pw-{unique}", url=pve.url, verify_tls=False,
                         auth={"username": PVE_USER, "password": PVE_PASSWORD})
    assert probed(operator, by_password["id"])["ok"] is True
    calls = [c for c in pve.calls if c["path"] == "/api2/json/version"]
    assert calls and calls[-1]["status"] == 200 and calls[-1]["params"] == {}


def test_wrong_credentials_are_an_authentication_failure(operator, pve, unique):
    wrong = create(operator, name=f"wrong-{unique}", url=pve.url, verify_tls=False,
                   auth={"token_id": TOKEN_ID, "token_secret": "not-the-secret"})
    answer = probed(operator, wrong["id"])
    assert answer["ok"] is False and answer["error"]["code"] == "authentication_failed"
    assert "not-the-secret" not in json.dumps(answer)
    wrong_password = create(operator, name=f"wrongpw-{unique}", url=pve.url, verify_tls=False,
                            auth={"username": PVE_USER, "password": "not-the-password"})
    assert probed(operator, wrong_password["id"])["error"]["code"] == "authentication_failed"


def test_tls_is_verified_by_default_and_by_ca_or_fingerprint(operator, pve, unique):
    verified = create(operator, name=f"tls-{unique}", url=pve.url)
    answer = probed(operator, verified["id"])
    assert answer["ok"] is False and answer["error"]["code"] == "tls_verification_failed"
    pinned = create(operator, name=f"pin-{unique}", url=pve.url, fingerprint=pve.fingerprint)
    assert probed(operator, pinned["id"])["ok"] is True
    with_ca = create(operator, name=f"ca-{unique}", url=pve.url, ca_pem=pve.ca_pem)
    assert probed(operator, with_ca["id"])["ok"] is True
    other = operator.patch(f"/api/v1/connections/{pinned['id']}", json={"fingerprint": ":".join(["AB"] * 32)})
    assert other.status_code == 200
    assert probed(operator, pinned["id"])["error"]["code"] == "tls_fingerprint_mismatch"


def test_nothing_listening_is_unreachable(operator, unique):
    nowhere = create(operator, name=f"nowhere-{unique}", url=f"https://127.0.0.1:{free_port()}", verify_tls=False)
    answer = probed(operator, nowhere["id"])
    assert answer["ok"] is False and answer["error"]["code"] == "unreachable"
    assert "127.0.0.1" in answer["error"]["message"]


def test_an_endpoint_that_never_answers_is_a_timeout(operator, unique):
    with SilentServer() as silent:
        hanging = create(operator, name=f"hang-{unique}", url=silent.url, verify_tls=False)
        answer = probed(operator, hanging["id"])
    assert answer["ok"] is False and answer["error"]["code"] == "timeout"
