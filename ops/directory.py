"""The directory of a one-machine Gatehouse: OpenLDAP (slapd) with the argon2 module, so
users bind with their Gatehouse password, started by `gatehouse up` or run alone by
`gatehouse directory` (the compose file's `directory` container).

It is the same slapd configuration the tests bind against (ops/slapd.py): no anonymous
access; Proxmox VE realms look users up as its read-only account `cn=reader,<base DN>`. When
the platform has no directory settings yet, `point_sync_at` gives proxmox_sync this one.
"""
from __future__ import annotations

from kernel.config import Config, persistent_secret
from ops.slapd import Slapd
from services.proxmox_sync.domain import DIRECTORY_FIELDS


def local_directory(cfg: Config) -> Slapd:
    base_dn = cfg["GATEHOUSE_DIRECTORY_BASE_DN"]
    return Slapd(_folder(cfg), port=cfg.integer("GATEHOUSE_DIRECTORY_PORT"), base_dn=base_dn,
                 admin_dn=f"cn=admin,{base_dn}", admin_password=admin_password(cfg),
                 reader_password=reader_password(cfg), host=cfg["GATEHOUSE_DIRECTORY_HOST"])


def admin_password(cfg: Config) -> str:
    return cfg["GATEHOUSE_DIRECTORY_ADMIN_PASSWORD"] or persistent_secret(_folder(cfg) / "admin.secret")


def reader_password(cfg: Config) -> str:
    return cfg["GATEHOUSE_DIRECTORY_READER_PASSWORD"] or persistent_secret(_folder(cfg) / "reader.secret")


def _folder(cfg: Config):
    folder = cfg.data_dir / "directory"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def start(directory: Slapd) -> Slapd:
    directory.write_config()
    return directory.start()


def point_sync_at(rpc, url: str, cfg: Config, actor: dict) -> bool:
    """Directory settings for the directory of these settings at `url` (as the services
    reach it), unless some are set already; True when set now. Settings of this directory
    from before its reader account existed get the reader as the realms' bind DN."""
    current = rpc.proxmox_sync.get_directory_settings()
    slapd = local_directory(cfg)  # its names and passwords; nothing is started
    realm_bind = {"realm_bind_dn": slapd.reader_dn, "realm_bind_password": slapd.reader_password}
    if not current["configured"]:
        rpc.proxmox_sync.put_directory_settings(actor, {
            "url": url, "bind_dn": slapd.admin_dn, "password": slapd.admin_password, "base_dn": slapd.base_dn,
            **realm_bind})
        return True
    if current["bind_dn"] == slapd.admin_dn and not current["realm_bind_dn"]:
        kept = {name: current[name] for name in DIRECTORY_FIELDS}  # no password: the stored one stays
        rpc.proxmox_sync.put_directory_settings(actor, {**kept, **realm_bind})
    return False
