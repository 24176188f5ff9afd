"""tenancy's tables: only the kernel's outbox and inbox so far."""
from kernel.db import service_base

Base = service_base("tenancy")
metadata = Base.metadata
