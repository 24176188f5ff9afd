"""Request bodies refuse at the door what the services' rules refuse, naming the field: the rules
are the services' own (imported from their domain modules), so the two can never disagree."""
from __future__ import annotations

import pytest

from gateway.schemas import RegisterIn
from gateway.schemas.audit import ForwardingIn
from gateway.schemas.mail import InvitationsIn, PasswordPolicyIn, SmtpSettingsIn
from gateway.schemas.rbac import AssignmentIn, GroupIn, GroupPatchIn, RoleIn, RolePatchIn
from gateway.schemas.sessions import PasswordChangeIn
from gateway.schemas.sync import DirectorySettingsIn
from gateway.schemas.tenancy import ConnectionIn, TenantIn, TenantMemberIn
from gateway.schemas.users import UserCreateIn, UserPatchIn

TOKEN = {"token_id": "gatehouse@pve!sync", "token_secret": "s"}
DIRECTORY = {"url": "ldaps://ldap.example.org:636", "bind_dn": "cn=admin,dc=example,dc=org",
             "base_dn": "dc=example,dc=org"}
VALID = [
    (RoleIn, {"name": "auditor.v2", "permissions": ["admin.audit", "vm.view"]}),
    (AssignmentIn, {"role": "super_admin", "scope": {"nodes": ["pve1"]}}),
    (GroupIn, {"cn": "_team-1", "gid_number": 9999}),
    (UserCreateIn, {"username": "ada.l", "email": "Ada@Example.com", "first_name": " Ada ", "last_name": "L",
                    "groups": ["ldapusers"], "role": "viewer"}),
    (TenantIn, {"name": " Acme Corp "}),
    (ConnectionIn, {"name": "pve 1", "url": "https://pve1.example.com", "auth": TOKEN, "realm": "ldap",
                    "fingerprint": ":".join(["ab"] * 32)}),
    (ConnectionIn, {"name": "pve 2", "url": "https://[::1]:8006", "auth": {"username": "root@pam", "password": "p"}}),
    (SmtpSettingsIn, {"host": "mail.example.org", "port": 587, "tls_mode": "starttls", "from_address": "a@b.org"}),
    (DirectorySettingsIn, DIRECTORY),
    (PasswordPolicyIn, {"min_length": 16, "max_length": 16}),
    (ForwardingIn, {"enabled": True, "host": "siem.example.org", "port": 514, "protocol": "tcp"}),
    (ForwardingIn, {"enabled": False}),
]
REFUSED = [
    (RoleIn, {"name": "Bad Name", "permissions": ["vm.view"]}, "name"),
    (RoleIn, {"name": "viewer", "permissions": ["vm.view"]}, "name"),  # a built-in's
    (RoleIn, {"name": "ok\n", "permissions": ["vm.view"]}, "name"),
    (RoleIn, {"name": "ok", "permissions": ["vm.fly"]}, "permissions"),
    (RolePatchIn, {"permissions": []}, "permissions"),
    (AssignmentIn, {"role": "Emperor"}, "role"),
    (AssignmentIn, {"role": "viewer", "scope": {"racks": ["1"]}}, "scope"),
    (AssignmentIn, {"role": "viewer", "scope": {"vms": ["x" * 129]}}, "scope"),
    (GroupIn, {"cn": "9lives"}, "cn"),
    (GroupIn, {"cn": "team\n"}, "cn"),
    (GroupPatchIn, {"gid_number": 10000}, "gid_number"),  # would equal a uidNumber
    (UserCreateIn, {"username": "root", "email": "r@example.com", "first_name": "R", "last_name": "R"}, "username"),
    (UserCreateIn, {"username": "x" * 33, "email": "r@example.com", "first_name": "R", "last_name": "R"}, "username"),
    (UserPatchIn, {"email": "not-an-address"}, "email"),
    (UserPatchIn, {"first_name": "   "}, "first_name"),
    (UserPatchIn, {"groups": ["Admins"]}, "groups"),
    (UserPatchIn, {"role": "no such role"}, "role"),
    (RegisterIn, {"username": "9lives", "first_name": "N", "last_name": "L", "password": "a passphrase"}, "username"),
    (RegisterIn, {"username": "ada", "first_name": "A", "last_name": "L", "password": "7 chars"}, "password"),
    (PasswordChangeIn, {"current_password": "x", "new_password": "x" * 1025}, "new_password"),
    (TenantIn, {"name": "   "}, "name"),
    (TenantIn, {"name": "bell\x07"}, "name"),
    (TenantMemberIn, {"role": "Admin"}, "role"),
    (InvitationsIn, {"emails": "a@example.com", "role": "Admin"}, "role"),
    (ConnectionIn, {"name": "p", "url": "http://pve1", "auth": TOKEN}, "url"),
    (ConnectionIn, {"name": "p", "url": "https://pve1", "auth": TOKEN, "realm": "1x"}, "realm"),
    (ConnectionIn, {"name": "p", "url": "https://pve1", "auth": TOKEN, "fingerprint": "12:34"}, "fingerprint"),
    (ConnectionIn, {"name": "p", "url": "https://pve1", "auth": TOKEN, "ca_pem": "not a certificate"}, "ca_pem"),
    (ConnectionIn, {"name": "p", "url": "https://pve1", "auth": {"token_id": "no-realm", "token_secret": "s"}}, "auth"),
    (SmtpSettingsIn, {"host": "mail", "port": 25, "tls_mode": "none", "from_address": "nobody"}, "from_address"),
    (SmtpSettingsIn, {"host": "not a host", "port": 25, "tls_mode": "none", "from_address": "a@b.org"}, "host"),
    (DirectorySettingsIn, {**DIRECTORY, "url": "http://ldap"}, "url"),
    (DirectorySettingsIn, {**DIRECTORY, "base_dn": "example.org"}, "base_dn"),
    (DirectorySettingsIn, {**DIRECTORY, "login_shell": "bash"}, "login_shell"),
    (DirectorySettingsIn, {**DIRECTORY, "start_tls": True}, "start_tls"),  # ldaps:// is TLS already
    (SmtpSettingsIn, {"host": "mail", "port": 25, "tls_mode": "none", "from_address": "a@b.org", "password": "p"},
     "password"),  # needs a username
    (PasswordPolicyIn, {"min_length": 20, "max_length": 16}, "max_length"),
    (ForwardingIn, {"enabled": True, "host": "siem.example.org", "port": 514}, "protocol"),
    (ForwardingIn, {"enabled": False, "app_name": "has space"}, "app_name"),
]


@pytest.mark.parametrize("schema,body", VALID)
def test_what_the_services_accept_passes_the_door(schema, body):
    assert schema().validate(body) == {}


@pytest.mark.parametrize("schema,body,field", REFUSED)
def test_what_the_services_refuse_is_refused_at_the_door_naming_the_field(schema, body, field):
    assert set(schema().validate(body)) == {field}
