"""proxmox_sync's shared value rules: the LDAP directory's settings and the inventory's power actions.

Pure (stdlib only): proxmox_sync's domain and inventory import these; the gateway checks the
directory settings and maps a power action to its permission with them.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

# Power actions on a VM or container and the permission each needs (stop and shutdown both end the guest).
ACTIONS = {"start": "vm.start", "stop": "vm.stop", "shutdown": "vm.stop", "reboot": "vm.restart"}


# --- the directory's settings -------------------------------------------------------------------

DIRECTORY_FIELDS = ("url", "bind_dn", "base_dn", "start_tls", "verify_tls", "ca_pem", "login_shell", "realm_server",
                    "realm_bind_dn")
_DN = re.compile(r"^[A-Za-z][\w-]*=[^,=\x00-\x1f]+(,[A-Za-z][\w-]*=[^,=\x00-\x1f]+)*$")  # no control characters


def directory_problems(fields: dict, password_stored: bool, realm_password_stored: bool = False) -> dict:
    """field -> what is wrong with the LDAP directory's settings. realm_bind_dn (the account
    Proxmox VE realms search as) goes with a realm_bind_password, given or stored."""
    problems = {}
    url = urlsplit(fields.get("url") or "")
    if url.scheme not in ("ldap", "ldaps") or not url.hostname or url.path not in ("", "/"):
        problems["url"] = "must be ldap://host[:port] or ldaps://host[:port]"
    else:
        try:
            url.port  # noqa: B018 - raises on a bad port
        except ValueError:
            problems["url"] = "has an invalid port"
    for name in ("bind_dn", "base_dn"):
        if not _DN.fullmatch(fields.get(name) or ""):
            problems[name] = "must be a distinguished name such as dc=example,dc=org"
    if fields.get("start_tls") and url.scheme == "ldaps":
        problems["start_tls"] = "is for ldap:// URLs; ldaps:// is TLS already"
    shell = fields.get("login_shell") or ""
    if not shell.startswith("/") or any(c.isspace() for c in shell):
        problems["login_shell"] = "must be an absolute path such as /bin/bash"
    if fields.get("ca_pem") and "-----BEGIN CERTIFICATE-----" not in fields["ca_pem"]:
        problems["ca_pem"] = "must be a PEM certificate"
    if not password_stored and not fields.get("password"):
        problems["password"] = "is required when the directory is first configured"
    if fields.get("realm_bind_dn"):
        if not _DN.fullmatch(fields["realm_bind_dn"]):
            problems["realm_bind_dn"] = "must be a distinguished name such as cn=reader,dc=example,dc=org"
        if not realm_password_stored and not fields.get("realm_bind_password"):
            problems["realm_bind_password"] = "is required with realm_bind_dn"
    elif fields.get("realm_bind_password"):
        problems["realm_bind_password"] = "goes with realm_bind_dn"
    return problems
