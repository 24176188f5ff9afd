"""Tenancy: tenants and Proxmox connections (capabilities land with the tenancy issue)."""
from kernel.service import Database, ServiceBase
from services.tenancy import storage


class TenancyService(ServiceBase):
    name = "tenancy"
    db = Database(storage.metadata)
