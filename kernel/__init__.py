"""The shared kernel: what every Gatehouse service needs and nothing more.

config (settings from the environment), envelope (domain events), errors (remote
errors mapped to HTTP), db (engine, unit of work, outbox and inbox tables), outbox
(the relay that publishes committed events), consumer (idempotent event
entrypoint with dead-lettering), topology (exchanges and queues), migrate (Alembic).
"""
import warnings

# eventlet 0.41 warns on import that it is in maintenance mode; nameko 2 needs it.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

SERVICES = ("identity", "rbac", "tenancy", "audit", "proxmox_sync")

# Until multi-tenancy is enabled everything lives in this tenant.
DEFAULT_TENANT_ID = "default"

# A pseudo-permission held by super admins only (never part of a role): routes for super
# admins alone require it, and rbac's authorize answers it.
SUPER_ADMIN_ONLY = "super_admin"

# The scope of a cross-tenant read (super admins' views): every tenant, where a tenant id would go.
EVERY_TENANT = "*"

# The operator CLI's actor (ops/operator.py): no user id, this name. It runs on the platform's own
# machine with broker access, so services treat it as a super admin.
OPERATOR = "cli"
