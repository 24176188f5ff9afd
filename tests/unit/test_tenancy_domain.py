"""Tenancy's pure rules: names, connection settings, memberships, no takeover across tenants."""
from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.tenancy import domain

FINGERPRINT = ":".join(["ab"] * 32)
TOKEN_AUTH = {"token_id": "gatehouse@pve!sync", "token_secret": "s3cret"}


def pem_certificate() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --- tenants -----------------------------------------------------------------------------------------


def test_names_are_the_same_whatever_their_case_and_spaces():
    assert domain.name_key("  Acme Corp ") == domain.name_key("acme corp") == "acme corp"


@pytest.mark.parametrize("name, problem", [
    ("", "is required"), ("   ", "is required"), (None, "is required"), ("x" * 65, "must be at most 64 characters"),
    ("bad\nname", "must not contain control characters"),
])
def test_bad_names(name, problem):
    assert domain.name_problem(name) == problem


def test_tenant_problems_check_only_what_is_sent():
    assert domain.tenant_problems({}) == {}
    assert domain.tenant_problems({"name": "Acme", "description": ""}) == {}
    assert set(domain.tenant_problems({"name": "", "description": "d" * 501})) == {"name", "description"}


def test_disabling_needs_default_to_be_the_only_tenant():
    assert domain.disable_refusal(1) is None
    assert domain.disable_refusal(2) == "tenants_exist"


def test_deleting_refuses_default_and_tenants_owning_connections():
    assert domain.tenant_delete_refusal("default", 0) == "default_tenant_protected"
    assert domain.tenant_delete_refusal("t1", 2) == "tenant_has_connections"
    assert domain.tenant_delete_refusal("t1", 0) is None


# --- connections ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, normalized", [
    ("https://pve.example.com", "https://pve.example.com:8006"),
    ("https://PVE.example.com:443/", "https://pve.example.com:443"),
    ("https://10.0.0.5:8006", "https://10.0.0.5:8006"),
    ("https://[2001:db8::1]", "https://[2001:db8::1]:8006"),
])
def test_urls_are_normalized_to_scheme_host_and_port(url, normalized):
    assert domain.normalize_url(url) == (normalized, None)


@pytest.mark.parametrize("url, problem", [
    ("http://pve.example.com", "must start with https://"),
    ("https://pve.example.com/api2/json", "must be https://host[:port] only, without a path"),
    ("https://root:pw@pve.example.com", "must not contain a user or password"),
    ("https://pve.example.com:99999", "is not a valid URL"),
    ("https://bad_host!", "has an invalid host name"),
    ("", "is required"),
])
def test_bad_urls(url, problem):
    assert domain.normalize_url(url) == (None, problem)


def test_host_and_port_of_a_normalized_url():
    assert domain.host_and_port("https://[2001:db8::1]:8006") == ("2001:db8::1", 8006)
    assert domain.host_and_port("https://pve:443") == ("pve", 443)


def test_fingerprints_are_sha256_with_colons():
    assert domain.fingerprint_problem(FINGERPRINT) is None
    assert domain.normalize_fingerprint(FINGERPRINT) == FINGERPRINT.upper()
    assert domain.fingerprint_problem("ab" * 32) is not None
    assert domain.fingerprint_problem(":".join(["ab"] * 20)) is not None  # SHA-1 length


def test_a_ca_must_be_a_pem_certificate():
    assert domain.ca_pem_problem(pem_certificate()) is None
    assert domain.ca_pem_problem("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----") \
        == "is not a PEM certificate"
    assert domain.ca_pem_problem("hello") == "is not a PEM certificate"


def test_a_ca_or_a_fingerprint_but_not_both_and_only_when_verifying():
    assert domain.tls_problems(True, None, None) == {}
    assert domain.tls_problems(True, "pem", None) == {}
    assert domain.tls_problems(False, None, None) == {}
    assert "fingerprint" in domain.tls_problems(True, "pem", FINGERPRINT)
    assert "verify_tls" in domain.tls_problems(False, None, FINGERPRINT)


def test_auth_is_a_token_or_a_user_never_both():
    assert domain.auth_problems(TOKEN_AUTH, secret_required=True) == {}
    assert domain.auth_problems({"username": "root@pam", "password": "pw"}, secret_required=True) == {}
    assert "auth" in domain.auth_problems({**TOKEN_AUTH, "username": "root@pam"}, secret_required=True)
    assert "auth" in domain.auth_problems({}, secret_required=True)
    assert domain.auth_problems({"token_id": "nobang@pve"}, secret_required=False) == {
        "auth.token_id": "must look like user@realm!tokenname"}
    assert domain.auth_problems({"token_id": "gatehouse@pve!sync"}, secret_required=True) == {
        "auth.token_secret": "is required"}
    assert domain.auth_problems({"token_id": "gatehouse@pve!sync"}, secret_required=False) == {}
    assert domain.auth_problems({"username": "root"}, secret_required=False) == {"auth.username": "must look like user@realm"}


def test_creating_a_connection_needs_name_url_and_auth():
    assert set(domain.connection_problems({}, creating=True)) == {"name", "url", "auth"}
    valid = {"name": "pve1", "url": "https://pve1", "auth": TOKEN_AUTH, "realm": "gatehouse", "verify_tls": True,
             "ca_pem": pem_certificate()}
    assert domain.connection_problems(valid, creating=True) == {}
    assert domain.connection_problems({"realm": "9bad"}, creating=False) == {
        "realm": "must be a Proxmox realm id: a letter, then letters, digits, '.', '_' or '-' (2-32)"}
    assert set(domain.connection_problems({"verify_tls": "yes", "fingerprint": "x"}, creating=False)) == \
        {"verify_tls", "fingerprint"}


# --- memberships ----------------------------------------------------------------------------------------


def test_default_comes_first_then_names():
    tenants = [("t2", "beta"), ("default", "Zeta default"), ("t1", "Alpha")]
    assert sorted(tenants, key=lambda t: domain.membership_order(*t)) == [
        ("default", "Zeta default"), ("t1", "Alpha"), ("t2", "beta")]
    assert domain.next_default([("t2", "beta"), ("t1", "Alpha")]) == "t1"
    assert domain.next_default([]) is None


def test_nobody_is_left_without_a_tenant():
    assert domain.removal_refusal({"default", "t1"}, "t1") is None
    assert domain.removal_refusal({"t1"}, "t1") == "last_tenant"
    assert domain.removal_refusal({"t1"}, "t2") == "not_a_member"


@pytest.mark.parametrize("super_admin, administered, user_tenants, target, refusal", [
    (True, set(), {"b"}, "a", None),  # super admins everywhere
    (True, set(), set(), "a", None),  # and for users in no tenant (a tenant of theirs was deleted)
    (False, set(), {"a"}, "a", None),  # already a member: the tenant's own business
    (False, {"b"}, {"b"}, "a", None),  # administers every tenant of the user
    (False, set(), set(), "a", "not_found"),  # in no tenant: nobody's to bring in but a super admin's
    (False, set(), {"b"}, "a", "not_found"),  # a user (or placeholder) of a tenant the actor does not administer
    (False, {"b"}, {"b", "c"}, "a", "cross_tenant_user"),  # administers b but not c
])
def test_no_takeover_across_tenants(super_admin, administered, user_tenants, target, refusal):
    assert domain.membership_change_refusal(super_admin, administered, user_tenants, target) == refusal


def test_a_trailing_newline_is_not_part_of_any_pattern():
    # `$` also matches before a final newline: every pattern is matched whole (fullmatch).
    assert domain.auth_problems({"token_id": "gatehouse@pve!sync\n"}, secret_required=False) == {
        "auth.token_id": "must look like user@realm!tokenname"}
    assert "realm" in domain.connection_problems({"realm": "pve\n"}, creating=False)
