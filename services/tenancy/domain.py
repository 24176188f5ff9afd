"""Tenancy's rules, without a database or a broker: names, connection settings, memberships.

Every *_problems function answers {field: what is wrong} (empty when all is well), the
`details` of a 422.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from cryptography import x509

from kernel import DEFAULT_TENANT_ID

NAME_MAX = 64
DESCRIPTION_MAX = 500
DEFAULT_PVE_PORT = 8006
DEFAULT_REALM = "gatehouse"
SECRET_MAX = 1024
CA_PEM_MAX = 64 * 1024

TOKEN, PASSWORD = "token", "password"  # the two ways a connection signs in to Proxmox VE
# The fields of each: what names the account, and its secret.
LOGIN_FIELD = {TOKEN: "token_id", PASSWORD: "username"}
SECRET_FIELD = {TOKEN: "token_secret", PASSWORD: "password"}

# Proxmox VE's own syntax (pve-realm, pve-userid, pve-tokenid).
REALM = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{1,31}$")
USERID = re.compile(r"^[^\s:/@!]{1,64}@[A-Za-z][A-Za-z0-9._-]{1,31}$")
TOKEN_ID = re.compile(r"^[^\s:/@!]{1,64}@[A-Za-z][A-Za-z0-9._-]{1,31}![A-Za-z][A-Za-z0-9._-]{1,63}$")
LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*$")
FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$")
# A tenant's or connection's name: some text that is not blank, without control characters.
NAME = re.compile(r"^[^\x00-\x1f]*[^\x00-\x1f\s][^\x00-\x1f]*$")


# --- tenants -------------------------------------------------------------------------


def name_key(name: str) -> str:
    """What makes two names the same: case and surrounding spaces do not count."""
    return name.strip().casefold()


def name_problem(name) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return "is required"
    if len(name.strip()) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters"
    if not NAME.fullmatch(name):
        return "must not contain control characters"
    return None


def tenant_problems(fields: dict) -> dict:
    """Problems of a tenant's fields; only those present are checked (a PATCH sends some)."""
    problems = {}
    if "name" in fields and (problem := name_problem(fields["name"])):
        problems["name"] = problem
    description = fields.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > DESCRIPTION_MAX):
        problems["description"] = f"must be text of at most {DESCRIPTION_MAX} characters"
    return problems


def disable_refusal(tenant_count: int) -> str | None:
    """Multi-tenancy can be switched off only while `default` is the one tenant."""
    return "tenants_exist" if tenant_count > 1 else None


def tenant_delete_refusal(tenant_id: str, connection_count: int) -> str | None:
    if tenant_id == DEFAULT_TENANT_ID:
        return "default_tenant_protected"
    if connection_count:
        return "tenant_has_connections"
    return None


# --- connections ------------------------------------------------------------------------


def normalize_url(url) -> tuple[str | None, str | None]:
    """(https://host:port, None) for a Proxmox VE address, or (None, problem).

    Only scheme, host and port: Proxmox serves its API under /api2/json of the root.
    """
    if not isinstance(url, str) or not url.strip():
        return None, "is required"
    url = url.strip()
    if len(url) > 255:
        return None, "must be at most 255 characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, "is not a valid URL"
    if parts.scheme.lower() != "https":
        return None, "must start with https://"
    if parts.username or parts.password:
        return None, "must not contain a user or password"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None, "must be https://host[:port] only, without a path"
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
        host = f"[{address.compressed}]" if address.version == 6 else address.compressed
    except ValueError:
        if not HOSTNAME.fullmatch(host):
            return None, "has an invalid host name"
        host = host.lower()
    return f"https://{host}:{port or DEFAULT_PVE_PORT}", None


def host_and_port(url: str) -> tuple[str, int]:
    """The host (IPv6 without brackets) and port of a normalized connection URL."""
    parts = urlsplit(url)
    return parts.hostname, parts.port or DEFAULT_PVE_PORT


def normalize_fingerprint(value: str) -> str:
    """AA:BB:... upper case, the way Proxmox VE shows a certificate's SHA-256 fingerprint."""
    return value.strip().upper()


def fingerprint_problem(value) -> str | None:
    if not isinstance(value, str) or not FINGERPRINT.fullmatch(value.strip()):
        return "must be a SHA-256 fingerprint: 32 hex byte pairs separated by colons"
    return None


def ca_pem_problem(value) -> str | None:
    if not isinstance(value, str) or len(value) > CA_PEM_MAX:
        return f"must be PEM text of at most {CA_PEM_MAX // 1024} KiB"
    try:
        certificates = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        return "is not a PEM certificate"
    return None if certificates else "is not a PEM certificate"


def tls_problems(verify_tls: bool, ca_pem: str | None, fingerprint: str | None) -> dict:
    """A CA or a fingerprint both verify the server: they need verify_tls, and exclude each other."""
    problems = {}
    if ca_pem and fingerprint:
        problems["fingerprint"] = "give either ca_pem or fingerprint, not both"
    if not verify_tls and (ca_pem or fingerprint):
        problems["verify_tls"] = "must be true when a ca_pem or fingerprint is given"
    return problems


def auth_problems(auth, secret_required: bool) -> dict:
    """auth: {token_id, token_secret} or {username, password}; the secret may be left out of an
    edit that keeps the stored one (secret_required False)."""
    if not isinstance(auth, dict):
        return {"auth": "must be {token_id, token_secret} or {username, password}"}
    method = auth_method(auth)
    if method is None:
        return {"auth": "must hold either token_id (API token) or username (user and password), not both"}
    login_field, secret_field = LOGIN_FIELD[method], SECRET_FIELD[method]
    problems = {}
    pattern = TOKEN_ID if method == TOKEN else USERID
    if not isinstance(auth.get(login_field), str) or not pattern.fullmatch(auth[login_field]):
        problems[f"auth.{login_field}"] = ("must look like user@realm!tokenname" if method == TOKEN
                                           else "must look like user@realm")
    secret = auth.get(secret_field)
    if secret is None:
        if secret_required:
            problems[f"auth.{secret_field}"] = "is required"
    elif not isinstance(secret, str) or not 1 <= len(secret) <= SECRET_MAX:
        problems[f"auth.{secret_field}"] = f"must be 1-{SECRET_MAX} characters"
    if unknown := set(auth) - {login_field, secret_field}:
        for field in sorted(unknown):
            problems[f"auth.{field}"] = f"is not a field of {method} authentication"
    return problems


def auth_method(auth: dict) -> str | None:
    has_token, has_user = "token_id" in auth or "token_secret" in auth, "username" in auth or "password" in auth
    if has_token == has_user:
        return None
    return TOKEN if has_token else PASSWORD


def connection_problems(fields: dict, creating: bool) -> dict:
    """Problems of a connection's fields. Creating: name, url and auth are required; an edit
    checks what it sends (auth without its secret keeps the stored one, if the method stays)."""
    problems = {}
    for field in ("name", "url", "auth") if creating else ():
        if fields.get(field) is None:
            problems[field] = "is required"
    if fields.get("name") is not None and (problem := name_problem(fields["name"])):
        problems["name"] = problem
    if fields.get("url") is not None and (problem := normalize_url(fields["url"])[1]):
        problems["url"] = problem
    if "verify_tls" in fields and not isinstance(fields["verify_tls"], bool):
        problems["verify_tls"] = "must be true or false"
    if fields.get("ca_pem") is not None and (problem := ca_pem_problem(fields["ca_pem"])):
        problems["ca_pem"] = problem
    if fields.get("fingerprint") is not None and (problem := fingerprint_problem(fields["fingerprint"])):
        problems["fingerprint"] = problem
    if "realm" in fields and (not isinstance(fields["realm"], str) or not REALM.fullmatch(fields["realm"])):
        problems["realm"] = "must be a Proxmox realm id: a letter, then letters, digits, '.', '_' or '-' (2-32)"
    if fields.get("auth") is not None:
        problems.update(auth_problems(fields["auth"], secret_required=creating))
    return problems


# --- memberships --------------------------------------------------------------------------


def membership_order(tenant_id: str, tenant_name: str) -> tuple:
    """How a user's tenants are listed: `default` first, then by name."""
    return (tenant_id != DEFAULT_TENANT_ID, name_key(tenant_name), tenant_id)


def next_default(remaining: list[tuple[str, str]]) -> str | None:
    """The tenant that becomes a user's default when theirs is left: the first of (id, name) in list order."""
    ordered = sorted(remaining, key=lambda pair: membership_order(*pair))
    return ordered[0][0] if ordered else None


def removal_refusal(member_of: set[str], tenant_id: str) -> str | None:
    """A user is never left without a tenant."""
    if tenant_id not in member_of:
        return "not_a_member"
    if member_of == {tenant_id}:
        return "last_tenant"
    return None


def membership_change_refusal(actor_is_super_admin: bool, actor_admin_tenants: set[str], user_tenants: set[str],
                              tenant_id: str) -> str | None:
    """May the actor (who administers `tenant_id`) put this user into it?

    A member's role and default flag there are that tenant's business. Bringing in a user
    of other tenants is not: besides a super admin, only someone who administers every
    tenant the user belongs to may (no takeover across tenants). A user in no tenant the
    actor administers, a placeholder of another tenant's invitation, a pending user of
    `default` or a user in no tenant at all, is answered exactly as an unknown id
    (`not_found`), so ids of other tenants cannot be probed. actor_admin_tenants needs to hold
    only those of the user's tenants the actor administers.
    """
    if actor_is_super_admin or tenant_id in user_tenants:
        return None
    administered = user_tenants & actor_admin_tenants
    if not administered:
        return "not_found"
    if administered != user_tenants:
        return "cross_tenant_user"
    return None
