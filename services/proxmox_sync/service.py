"""proxmox_sync: propagation to LDAP and Proxmox VE (capabilities land with the sync issue)."""
from kernel.service import Database, ServiceBase
from services.proxmox_sync import storage


class ProxmoxSyncService(ServiceBase):
    name = "proxmox_sync"
    db = Database(storage.metadata)
