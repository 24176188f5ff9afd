"""tenancy's shared value rules: tenant and connection names, Proxmox VE addresses, realms,
user and token ids, certificate fingerprints and pinned CAs, the two ways a connection signs in,
and who may bring a user into a tenant.

Pure (stdlib and cryptography's PEM parser): tenancy's domain imports these; the gateway checks
the same rules before asking tenancy; proxmox_sync reads a connection's address with them.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from cryptography import x509

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


# --- names -------------------------------------------------------------------------------

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


# --- connections -------------------------------------------------------------------------

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


def auth_method(auth: dict) -> str | None:
    has_token, has_user = "token_id" in auth or "token_secret" in auth, "username" in auth or "password" in auth
    if has_token == has_user:
        return None
    return TOKEN if has_token else PASSWORD


# --- memberships --------------------------------------------------------------------------

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
