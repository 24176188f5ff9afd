"""What proxmox_sync propagates, as plain values: the desired state's inputs, read from the
services that own them (identity, rbac, tenancy) through internal RPCs.

The planners (`ldap_plan`, `pve_plan`) turn these into the desired state of one target and
compare it with what the target holds; the engine (`engine`) decides when.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from contracts.proxmox_sync import DIRECTORY_FIELDS, directory_problems  # noqa: F401 - shared, re-exported

ACTIVE = "active"

# Targets: the directory, and one per Proxmox connection ("pve:<connection id>").
LDAP_TARGET = "ldap"
PVE_PREFIX = "pve:"


def pve_target(connection_id: str) -> str:
    return f"{PVE_PREFIX}{connection_id}"


def connection_of(target: str) -> str | None:
    return target[len(PVE_PREFIX):] if target.startswith(PVE_PREFIX) else None


@dataclass(frozen=True)
class Person:
    """A user as the directory and Proxmox see them (identity.directory_entries)."""

    user_id: str
    username: str
    first_name: str
    last_name: str
    email: str | None
    uid_number: int
    status: str  # active | pending | suspended (invited users without a username are never here)
    # The argon2id PHC string ($argon2id$v=19$...), None without a password. Read by an internal
    # RPC, written only to LDAP's userPassword; never in an event, a log, an error or a status.
    password_hash: str | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @classmethod
    def from_dict(cls, data: dict) -> Person:
        return cls(user_id=data["user_id"], username=data["username"], first_name=data.get("first_name") or "",
                   last_name=data.get("last_name") or "", email=data.get("email"),
                   uid_number=int(data["uid_number"]), status=data["status"],
                   password_hash=data.get("password_hash"))


@dataclass(frozen=True)
class Group:
    """An rbac group (rbac.directory_groups): a posixGroup in LDAP, a group in Proxmox."""

    group_id: str
    cn: str
    gid_number: int
    description: str
    is_admin: bool
    member_ids: frozenset[str] = frozenset()
    tenant_id: str | None = None  # the tenant it belongs to; None: platform-wide

    @classmethod
    def from_dict(cls, data: dict) -> Group:
        return cls(group_id=data["group_id"], cn=data["cn"], gid_number=int(data["gid_number"]),
                   description=data.get("description") or "", is_admin=bool(data.get("is_admin")),
                   member_ids=frozenset(data.get("member_ids") or ()), tenant_id=data.get("tenant_id"))

    def seen_from(self, tenant_id: str) -> bool:
        """Whether a tenant's Proxmox VE mirrors it: the tenant's own groups and the platform-wide ones."""
        return self.tenant_id is None or self.tenant_id == tenant_id


@dataclass(frozen=True)
class Access:
    """A tenant member's rights in that tenant (rbac.access_in_tenant)."""

    user_id: str
    role: str | None
    permissions: frozenset[str]
    scope: dict  # normalized: {"connections", "nodes", "storages", "vms"} -> sorted ids; empty = all
    super_admin: bool  # super_admin role anywhere, or member of an administrator group

    @classmethod
    def from_dict(cls, data: dict) -> Access:
        return cls(user_id=data["user_id"], role=data.get("role"), permissions=frozenset(data.get("permissions") or ()),
                   scope=data.get("scope") or {}, super_admin=bool(data.get("super_admin")))


@dataclass(frozen=True)
class CustomRole:
    """A custom rbac role visible in a tenant (its own or a global one)."""

    name: str
    permissions: frozenset[str]

    @classmethod
    def from_dict(cls, data: dict) -> CustomRole:
        return cls(name=data["name"], permissions=frozenset(data.get("permissions") or ()))


# --- the directory's settings (DIRECTORY_FIELDS, directory_problems: contracts/proxmox_sync.py) ------

def realm_password_due(last_sent: dict | None, realm: str, bind_dn: str | None, password_digest: str | None) -> bool:
    """Whether a realm's bind password must be sent to Proxmox VE, which never answers it: unless
    the last one sent (`last_sent`: realm, bind_dn, password_digest) is this password for this
    realm and bind DN. Nothing known (a realm made elsewhere, before Gatehouse kept track) sends it."""
    if not bind_dn or not password_digest:
        return False
    return last_sent is None or (last_sent["realm"], last_sent["bind_dn"], last_sent["password_digest"]) != \
        (realm, bind_dn, password_digest)


def realm_fields(realm: str, settings, server: str | None = None, port: int | None = None,
                 mode: str | None = None, bind_dn: str | None = None) -> dict:
    """The Proxmox LDAP realm that points at our directory's people (pve.RealmSpec's fields, but
    the bind password). Server, port and mode follow the directory's URL unless given (how
    Proxmox nodes reach it); it searches bound as `bind_dn` (anonymously without one)."""
    url = urlsplit(settings.url)
    default_mode = "ldaps" if url.scheme == "ldaps" else ("ldap+starttls" if settings.start_tls else "ldap")
    return {"realm": realm, "server": server or url.hostname, "port": int(port or url.port or
                                                                         (636 if url.scheme == "ldaps" else 389)),
            "mode": mode or default_mode, "base_dn": f"ou=people,{settings.base_dn}", "user_attr": "uid",
            "comment": "Gatehouse directory (managed by Gatehouse)", "bind_dn": bind_dn}
