"""The Proxmox VE stand-in refuses what the API schema refuses, and signs in like Proxmox VE."""
from __future__ import annotations

import hashlib
import ssl

import pytest
import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from tests.pve_standin import PveStandin, Schema, _default_schema, check_value

TOKEN_ID, TOKEN_SECRET = "gatehouse@pve!sync", "0b3c1f6e-token-value"
# most calls here skip verification; one test checks it
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def schema() -> Schema:
    return _default_schema()


@pytest.fixture(scope="module")
def pve():
    with PveStandin() as server:
        server.add_token(TOKEN_ID, TOKEN_SECRET)
        server.add_user("alice@pve", "alice-password")
        yield server


def token_headers():
    return {"Authorization": f"PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}"}


def api(pve, path, method="GET", **kwargs):
    return requests.request(method, f"{pve.url}/api2/json{path}", verify=False, timeout=5, **kwargs)


# --- the schema -----------------------------------------------------------------------------------


def test_paths_resolve_to_their_templates_with_parameters(schema):
    endpoint, path_params = schema.resolve("/access/users/alice@pve")
    assert endpoint.template == "/access/users/{userid}" and path_params == {"userid": "alice@pve"}
    assert schema.resolve("/access/users/alice@pve/token/sync")[0].template == "/access/users/{userid}/token/{tokenid}"
    assert schema.resolve("/version")[0].template == "/version"
    assert schema.resolve("/no/such/thing") is None


def test_a_valid_call_has_no_errors(schema):
    put_acl = schema.by_template["/access/acl"].info["PUT"]
    assert Schema.check(put_acl, {"path": "/vms/100", "roles": "PVEVMUser", "users": "alice@gatehouse",
                                  "propagate": "1"}) == {}


@pytest.mark.parametrize("params, field, message", [
    ({"path": "/", "roles": "PVEAuditor", "colour": "red"}, "colour", "not defined in schema"),
    ({"roles": "PVEAuditor"}, "path", "missing and it is not optional"),
    ({"path": "/", "roles": "PVEAuditor", "propagate": "maybe"}, "propagate", "type check ('boolean')"),
    ({"path": "/", "roles": "PVEAuditor", "users": "no realm"}, "users", "does not look like a valid"),
    ({"path": "/", "roles": "bad role!"}, "roles", "does not look like a valid"),
])
def test_refusals_name_the_parameter(schema, params, field, message):
    errors = Schema.check(schema.by_template["/access/acl"].info["PUT"], params)
    assert field in errors and message in errors[field], errors


def test_value_checks_follow_the_schema_keywords():
    assert check_value({"type": "integer", "minimum": 100}, "99") == "value must have a minimum value of 100"
    assert check_value({"type": "integer"}, "12a").startswith("type check ('integer')")
    assert check_value({"type": "integer", "maximum": 10}, 10) is None
    assert check_value({"type": "string", "enum": ["pve", "ldap"]}, "ad").startswith("value 'ad' does not have a value")
    assert check_value({"type": "string", "pattern": "[0-9a-f]{4}"}, "12345") == "value does not match the regex pattern"
    assert check_value({"type": "string", "maxLength": 3}, "abcd") == "value may only be 3 characters long"
    assert check_value({"type": "boolean"}, "on") is None
    assert check_value({"type": "array", "items": {"type": "integer"}}, ["1", "x"]).startswith("type check")


def test_numbered_parameters_match_their_family(schema):
    create_vm = schema.by_template["/nodes/{node}/qemu"].info["POST"]
    assert "net0" not in Schema.check(create_vm, {"node": "pve1", "vmid": "100", "net0": "virtio,bridge=vmbr0"})
    assert "netx" in Schema.check(create_vm, {"node": "pve1", "vmid": "100", "netx": "x"})


# --- the server -------------------------------------------------------------------------------------


def test_an_api_token_reads_the_version(pve):
    answer = api(pve, "/version", headers=token_headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["release"] == "8.3"
    assert pve.calls[-1]["status"] == 200


def test_an_unknown_parameter_is_refused_like_proxmox_does(pve):
    answer = api(pve, "/version", params={"verbose": "1"}, headers=token_headers())
    assert answer.status_code == 400
    assert answer.reason == "Parameter verification failed."
    assert answer.json()["data"] is None and "verbose" in answer.json()["errors"]


def test_unknown_paths_and_methods_are_refused(pve):
    assert api(pve, "/no/such/path", headers=token_headers()).status_code == 400
    assert api(pve, "/version", "DELETE", headers=token_headers()).status_code == 400


def test_a_call_the_schema_allows_but_no_handler_serves_is_501(pve):
    assert api(pve, "/access/users", headers=token_headers()).status_code == 501


def test_without_valid_credentials_the_answer_is_401(pve):
    assert api(pve, "/version").status_code == 401
    wrong = {"Authorization": f"PVEAPIToken={TOKEN_ID}=wrong"}
    assert api(pve, "/version", headers=wrong).status_code == 401
    assert api(pve, "/version", cookies={"PVEAuthCookie": "PVE:forged"}).status_code == 401


def test_tickets_need_the_csrf_token_on_writes(pve):
    login = api(pve, "/access/ticket", "POST", data={"username": "alice@pve", "password": "alice-password"})
    assert login.status_code == 200, login.text
    ticket = login.json()["data"]
    cookies = {"PVEAuthCookie": ticket["ticket"]}
    assert api(pve, "/version", cookies=cookies).status_code == 200
    body = {"path": "/", "roles": "PVEAuditor", "users": "alice@pve"}
    assert api(pve, "/access/acl", "PUT", data=body, cookies=cookies).status_code == 401
    with_csrf = api(pve, "/access/acl", "PUT", data=body, cookies=cookies,
                    headers={"CSRFPreventionToken": ticket["CSRFPreventionToken"]})
    assert with_csrf.status_code == 501  # past authentication and the schema: no handler yet
    assert api(pve, "/access/ticket", "POST", data={"username": "alice@pve", "password": "nope"}).status_code == 401


def test_proxmoxer_signs_in_both_ways(pve):
    by_token = ProxmoxAPI(pve.host, port=pve.port, user="gatehouse@pve", token_name="sync",
                          token_value=TOKEN_SECRET, verify_ssl=False)
    assert by_token.version.get()["version"] == "8.3.2"
    by_password = ProxmoxAPI(pve.host, port=pve.port, user="alice@pve", password="alice-password", verify_ssl=False)
    assert by_password.version.get()["release"] == "8.3"
    with pytest.raises(ResourceException) as refused:
        by_token.version.get(verbose=1)
    assert refused.value.status_code == 400


def test_tls_is_verifiable_with_the_ca_and_the_fingerprint(pve, tmp_path):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{pve.url}/api2/json/version", timeout=5)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(pve.ca_pem)
    assert requests.get(f"{pve.url}/api2/json/version", headers=token_headers(), verify=str(ca_file),
                        timeout=5).status_code == 200
    served = ssl.get_server_certificate((pve.host, pve.port))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest().upper()
    assert ":".join(digest[i:i + 2] for i in range(0, 64, 2)) == pve.fingerprint
