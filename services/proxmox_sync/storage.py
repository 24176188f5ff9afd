"""proxmox_sync's tables: only the kernel's outbox and inbox so far."""
from kernel.db import service_base

Base = service_base("proxmox_sync")
metadata = Base.metadata
