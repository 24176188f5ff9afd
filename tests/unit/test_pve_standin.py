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
    assert api(pve, "/pools", headers=token_headers()).status_code == 501


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
    assert with_csrf.status_code == 200, with_csrf.text
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


# --- access control (/access/...) ---------------------------------------------------------------------


@pytest.fixture
def root():
    """A fresh stand-in and proxmoxer signed in to it as root@pam (token)."""
    with PveStandin() as server:
        server.add_token("root@pam!t", TOKEN_SECRET)
        yield ProxmoxAPI(server.host, port=server.port, user="root@pam", token_name="t", token_value=TOKEN_SECRET,
                         verify_ssl=False)


def refused(call) -> ResourceException:
    with pytest.raises(ResourceException) as raised:
        call()
    return raised.value


def test_users_are_created_read_updated_listed_and_deleted(root):
    root.access.groups.post(groupid="ops", comment="Operations")
    root.access.groups.post(groupid="devs")
    root.access.users.post(userid="bob@pve", firstname="Bob", email="bob@example.org", groups="ops", comment="c")
    assert root.access.users("bob@pve").get() == {"enable": 1, "expire": 0, "firstname": "Bob",
                                                  "email": "bob@example.org", "comment": "c", "groups": ["ops"],
                                                  "tokens": {}}
    root.access.users("bob@pve").put(groups="devs", append=1, enable=0, email="")
    bob = root.access.users("bob@pve").get()
    assert bob["groups"] == ["devs", "ops"] and bob["enable"] == 0 and "email" not in bob
    root.access.users("bob@pve").put(groups="devs")  # without append: exactly these
    assert root.access.users("bob@pve").get()["groups"] == ["devs"]
    listed = {user["userid"]: user for user in root.access.users.get(full=1)}
    assert set(listed) == {"root@pam", "bob@pve"}
    assert listed["bob@pve"]["groups"] == "devs" and listed["bob@pve"]["realm-type"] == "pve"
    assert "groups" not in root.access.users.get()[0]
    assert [user["userid"] for user in root.access.users.get(enabled=0)] == ["bob@pve"]
    root.access.users("bob@pve").delete()
    assert refused(root.access.users("bob@pve").get).content == "no such user ('bob@pve')"


def test_user_refusals_are_worded_like_proxmox(root):
    root.access.users.post(userid="ann@pve")
    duplicate = refused(lambda: root.access.users.post(userid="ann@pve"))
    assert (duplicate.status_code, duplicate.content) == (500, "create user failed: user 'ann@pve' already exists")
    assert refused(lambda: root.access.users.post(userid="x@nowhere")).content == \
        "create user failed: domain 'nowhere' does not exist"
    assert refused(lambda: root.access.users.post(userid="y@pve", groups="nope")).content == \
        "create user failed: no such group 'nope'"
    bad_id = refused(lambda: root.access.users.post(userid="no-realm"))
    assert bad_id.status_code == 400 and "userid" in bad_id.errors
    assert refused(root.access.users("ghost@pve").delete).content == "delete user failed: no such user ('ghost@pve')"
    assert refused(lambda: root.access.users("ann@pve").put(groups="nope")).status_code == 500
    assert "y@pve" not in {user["userid"] for user in root.access.users.get()}  # no partial writes


def test_groups_list_their_members_and_deleting_one_removes_memberships_and_acls(root):
    root.access.groups.post(groupid="ops", comment="Operations")
    root.access.users.post(userid="bob@pve", groups="ops")
    assert root.access.groups("ops").get() == {"comment": "Operations", "members": ["bob@pve"]}
    assert root.access.groups.get() == [{"groupid": "ops", "comment": "Operations", "users": "bob@pve"}]
    root.access.groups("ops").put(comment="Ops")
    root.access.acl.put(path="/vms/100", roles="PVEVMUser", groups="ops")
    assert refused(lambda: root.access.groups.post(groupid="ops")).content == \
        "create group failed: group 'ops' already exists"
    root.access.groups("ops").delete()
    assert root.access.users("bob@pve").get()["groups"] == [] and root.access.acl.get() == []
    assert refused(root.access.groups("ops").get).content == "group 'ops' does not exist"


def test_built_in_roles_have_their_privileges_and_cannot_be_changed(root):
    roles = {role["roleid"]: role for role in root.access.roles.get()}
    assert {"Administrator", "PVEAdmin", "PVEVMAdmin", "PVEVMUser", "PVEAuditor", "PVEDatastoreAdmin",
            "PVEDatastoreUser", "PVEUserAdmin", "PVESysAdmin", "PVEPoolAdmin", "NoAccess",
            "PVETemplateUser"} <= set(roles)
    assert all(role["special"] == 1 for role in roles.values())
    assert set(root.access.roles("PVEVMUser").get()) >= {"VM.Audit", "VM.Console", "VM.PowerMgmt", "VM.Backup"}
    assert "VM.Allocate" not in root.access.roles("PVEVMUser").get()
    assert root.access.roles("NoAccess").get() == {}
    assert "Sys.Modify" not in roles["PVEAdmin"]["privs"] and "Sys.Modify" in roles["Administrator"]["privs"]
    assert refused(lambda: root.access.roles("PVEAdmin").put(privs="VM.Audit")).status_code == 500
    assert refused(root.access.roles("PVEAuditor").delete).status_code == 500
    reserved = refused(lambda: root.access.roles.post(roleid="PVEMine", privs="VM.Audit"))
    assert reserved.status_code == 400 and "roleid" in reserved.errors


def test_custom_roles_take_only_known_privileges(root):
    root.access.roles.post(roleid="GH_helpdesk", privs="VM.Audit,VM.Console")
    assert root.access.roles("GH_helpdesk").get() == {"VM.Audit": 1, "VM.Console": 1}
    root.access.roles("GH_helpdesk").put(privs="VM.PowerMgmt", append=1)
    assert set(root.access.roles("GH_helpdesk").get()) == {"VM.Audit", "VM.Console", "VM.PowerMgmt"}
    root.access.roles("GH_helpdesk").put(privs="VM.Audit")
    assert root.access.roles("GH_helpdesk").get() == {"VM.Audit": 1}
    unknown = refused(lambda: root.access.roles.post(roleid="GH_x", privs="VM.Audit,VM.Teleport"))
    assert (unknown.status_code, unknown.content) == (500, "create role failed: invalid privilege 'VM.Teleport'")
    malformed = refused(lambda: root.access.roles.post(roleid="GH_x", privs="VM.Audit!"))
    assert malformed.status_code == 400 and "privs" in malformed.errors
    assert refused(root.access.roles("GH_x").get).content == "role 'GH_x' does not exist"
    root.access.users.post(userid="bob@pve")
    root.access.acl.put(path="/", roles="GH_helpdesk", users="bob@pve")
    root.access.roles("GH_helpdesk").delete()
    assert root.access.acl.get() == []


def test_acl_entries_are_set_listed_and_deleted_like_proxmox(root):
    root.access.users.post(userid="bob@pve")
    root.access.groups.post(groupid="ops")
    root.access.acl.put(path="/vms/100", roles="PVEVMUser,PVEAuditor", users="bob@pve", groups="ops", propagate=0)
    root.access.acl.put(path="//storage/local/", roles="PVEDatastoreUser", users="bob@pve")
    assert root.access.acl.get() == [
        {"path": "/storage/local", "type": "user", "ugid": "bob@pve", "roleid": "PVEDatastoreUser", "propagate": 1},
        {"path": "/vms/100", "type": "group", "ugid": "ops", "roleid": "PVEAuditor", "propagate": 0},
        {"path": "/vms/100", "type": "group", "ugid": "ops", "roleid": "PVEVMUser", "propagate": 0},
        {"path": "/vms/100", "type": "user", "ugid": "bob@pve", "roleid": "PVEAuditor", "propagate": 0},
        {"path": "/vms/100", "type": "user", "ugid": "bob@pve", "roleid": "PVEVMUser", "propagate": 0}]
    root.access.acl.put(path="/vms/100", roles="PVEVMUser,PVEAuditor", groups="ops", delete=1)
    root.access.users("bob@pve").delete()
    assert root.access.acl.get() == []
    assert refused(lambda: root.access.acl.put(path="/", roles="PVEAuditor", users="ghost@pve")).content == \
        "ACL update failed: user 'ghost@pve' does not exist"
    assert refused(lambda: root.access.acl.put(path="/", roles="Nope", groups="ops")).content == \
        "ACL update failed: role 'Nope' does not exist"
    assert "path" in refused(lambda: root.access.acl.put(path="/vms/7", roles="PVEAuditor", groups="ops")).errors
    assert "users" in refused(lambda: root.access.acl.put(path="/", roles="PVEAuditor")).errors


def test_realms_are_created_read_updated_and_deleted(root):
    assert {realm["realm"]: realm["type"] for realm in root.access.domains.get()} == {"pam": "pam", "pve": "pve"}
    root.access.domains.post(realm="gatehouse", type="ldap", server1="ldap.example.org", port=636, mode="ldaps",
                             base_dn="ou=people,dc=example,dc=org", user_attr="uid", password="bind-secret")
    config = root.access.domains("gatehouse").get()
    assert config["port"] == 636 and config["mode"] == "ldaps" and "password" not in config and config["digest"]
    root.access.domains("gatehouse").put(comment="Directory", delete="port", digest=config["digest"])
    assert "port" not in root.access.domains("gatehouse").get()
    stale = refused(lambda: root.access.domains("gatehouse").put(comment="x", digest=config["digest"]))
    assert stale.status_code == 500 and "modified" in stale.content
    assert refused(lambda: root.access.domains.post(realm="gatehouse", type="ldap", server1="x", base_dn="y",
                                                    user_attr="uid")).content == \
        "create auth server failed: domain 'gatehouse' already exists"
    missing = refused(lambda: root.access.domains.post(realm="other", type="ldap", server1="x"))
    assert missing.status_code == 400 and {"base_dn", "user_attr"} <= set(missing.errors)
    wrong_option = refused(lambda: root.access.domains.post(realm="oidc", type="openid", server1="x",
                                                            **{"issuer-url": "https://x", "client-id": "c"}))
    assert wrong_option.status_code == 400 and "server1" in wrong_option.errors
    assert refused(lambda: root.access.domains.post(realm="pve2", type="pve")).status_code == 500
    assert refused(root.access.domains("pve").delete).status_code == 500
    root.access.users.post(userid="bob@gatehouse")
    root.access.domains("gatehouse").delete()
    assert refused(root.access.domains("gatehouse").get).content == "domain 'gatehouse' does not exist"


def test_the_access_state_is_safe_under_concurrent_requests(root):
    import concurrent.futures

    def create(n):
        root.access.users.post(userid=f"user{n}@pve")
        root.access.acl.put(path=f"/vms/{100 + n}", roles="PVEAuditor", users=f"user{n}@pve")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(16)))
    assert len(root.access.users.get()) == 17 and len(root.access.acl.get()) == 16


def test_the_dev_tool_prints_where_and_how_to_sign_in():
    import subprocess
    import sys

    tool = subprocess.Popen([sys.executable, "-m", "tests.pve_standin", "--port", "0", "--token", "dev@pve!cli=abc123"],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = [tool.stdout.readline() for _ in range(4)]
        url = lines[0].split(" at ")[1].strip()
        assert url.startswith("https://127.0.0.1:") and "dev@pve!cli" in lines[3] and "abc123" in lines[3]
        host, port = url[len("https://"):].split(":")
        by_token = ProxmoxAPI(host, port=int(port), user="dev@pve", token_name="cli", token_value="abc123",
                              verify_ssl=False)
        assert by_token.version.get()["version"]
    finally:
        tool.terminate()
        assert tool.wait(10) == 0


def test_an_ldap_realm_keeps_its_bind_dn_readable_and_its_password_write_only():
    from tests.pve_standin.access import realm_password

    with PveStandin() as server:
        server.add_token("root@pam!t", TOKEN_SECRET)
        root = ProxmoxAPI(server.host, port=server.port, user="root@pam", token_name="t", token_value=TOKEN_SECRET,
                          verify_ssl=False)
        root.access.domains.post(realm="dir", type="ldap", server1="ldap.example.org", base_dn="ou=people,dc=x",
                                 user_attr="uid", bind_dn="cn=reader,dc=x", password="reader-pw")
        config = root.access.domains("dir").get()
        assert config["bind_dn"] == "cn=reader,dc=x" and "password" not in config
        assert realm_password(server, "dir") == "reader-pw"
        root.access.domains("dir").put(password="new-pw")
        assert realm_password(server, "dir") == "new-pw" and root.access.domains("dir").get()["bind_dn"]
        too_long = refused(lambda: root.access.domains("dir").put(bind_dn="cn=" + "r" * 300))  # schema: 256 at most
        assert too_long.status_code == 400 and "bind_dn" in too_long.errors
        root.access.domains("dir").put(delete="bind_dn,password")
        assert "bind_dn" not in root.access.domains("dir").get() and realm_password(server, "dir") is None
