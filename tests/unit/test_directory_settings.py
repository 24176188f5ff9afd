"""The directory settings' rules for the realm bind account, and when its password goes to Proxmox VE."""
from __future__ import annotations

import pytest

from services.proxmox_sync.domain import directory_problems, realm_fields, realm_password_due
from services.proxmox_sync.ldap_plan import LdapSettings

BASE = {"url": "ldap://directory:1389", "bind_dn": "cn=admin,dc=example,dc=org", "password": "admin-pw",
        "base_dn": "dc=example,dc=org", "login_shell": "/bin/bash"}
READER = "cn=reader,dc=example,dc=org"


@pytest.mark.parametrize("fields, stored, problem", [
    ({"realm_bind_dn": READER}, False, ("realm_bind_password", "is required with realm_bind_dn")),
    ({"realm_bind_dn": "reader"}, True, ("realm_bind_dn", "must be a distinguished name such as "
                                                          "cn=reader,dc=example,dc=org")),
    ({"realm_bind_password": "pw"}, False, ("realm_bind_password", "goes with realm_bind_dn")),
    ({"realm_bind_dn": None, "realm_bind_password": "pw"}, True, ("realm_bind_password", "goes with realm_bind_dn")),
])
def test_a_realm_bind_dn_goes_with_a_password(fields, stored, problem):
    assert directory_problems({**BASE, **fields}, password_stored=False, realm_password_stored=stored) == \
        dict([problem])


@pytest.mark.parametrize("fields, stored", [
    ({"realm_bind_dn": READER, "realm_bind_password": "pw"}, False),
    ({"realm_bind_dn": READER}, True),  # the stored one stays
    ({"realm_bind_dn": None}, True),  # realms search anonymously
    ({}, False),
])
def test_valid_realm_bind_settings(fields, stored):
    assert directory_problems({**BASE, **fields}, password_stored=False, realm_password_stored=stored) == {}


SENT = {"realm": "gatehouse", "bind_dn": READER, "password_digest": "d1"}


@pytest.mark.parametrize("last_sent, realm, bind_dn, digest, due", [
    (None, "gatehouse", READER, "d1", True),  # never sent (or before Gatehouse kept track)
    (SENT, "gatehouse", READER, "d1", False),  # Proxmox has this one
    (SENT, "gatehouse", READER, "d2", True),  # the stored password changed
    (SENT, "gatehouse", "cn=other,dc=example,dc=org", "d1", True),  # another account
    (SENT, "renamed", READER, "d1", True),  # the connection's realm is another one
    ({**SENT, "bind_dn": None, "password_digest": None}, "gatehouse", READER, "d1", True),  # it searched anonymously
    (SENT, "gatehouse", None, None, False),  # no bind account: no password to send
])
def test_the_realm_password_goes_when_proxmox_may_not_have_it(last_sent, realm, bind_dn, digest, due):
    assert realm_password_due(last_sent, realm, bind_dn, digest) is due


def test_the_realm_binds_as_the_given_account():
    settings = LdapSettings("ldaps://ldap.example.org", "cn=admin,dc=example,dc=org", "pw", "dc=example,dc=org")
    fields = realm_fields("gatehouse", settings, bind_dn=READER)
    assert (fields["bind_dn"], fields["base_dn"], fields["port"], fields["mode"]) == \
        (READER, "ou=people,dc=example,dc=org", 636, "ldaps")
    assert realm_fields("gatehouse", settings)["bind_dn"] is None
