"""The directory of a one-machine Gatehouse: OpenLDAP (slapd) with the argon2 module, so
users bind with their Gatehouse password, started by `gatehouse up` or run alone by
`gatehouse directory` (the compose file's `directory` container).

It is the same slapd configuration the tests bind against (ops/slapd.py). When the
platform has no directory settings yet, `point_sync_at` gives proxmox_sync this one.
"""
from __future__ import annotations

from kernel.config import Config, persistent_secret
from ops.slapd import Slapd


def local_directory(cfg: Config) -> Slapd:
    folder = cfg.data_dir / "directory"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    base_dn = cfg["GATEHOUSE_DIRECTORY_BASE_DN"]
    password = cfg["GATEHOUSE_DIRECTORY_ADMIN_PASSWORD"] or persistent_secret(folder / "admin.secret")
    return Slapd(folder, port=cfg.integer("GATEHOUSE_DIRECTORY_PORT"), base_dn=base_dn,
                 admin_dn=f"cn=admin,{base_dn}", admin_password=password, host=cfg["GATEHOUSE_DIRECTORY_HOST"])


def start(directory: Slapd) -> Slapd:
    directory.write_config()
    return directory.start()


def point_sync_at(rpc, directory: Slapd, actor: dict) -> bool:
    """Directory settings for `directory` unless some are set already; True when set now."""
    if rpc.proxmox_sync.get_directory_settings()["configured"]:
        return False
    rpc.proxmox_sync.put_directory_settings(actor, {
        "url": directory.url, "bind_dn": directory.admin_dn, "password": directory.admin_password,
        "base_dn": directory.base_dn})
    return True
