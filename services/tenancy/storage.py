"""tenancy's tables: only the kernel's outbox and inbox so far."""
import sqlalchemy as sa

from kernel.db import kernel_tables

metadata = sa.MetaData()
kernel_tables(metadata, "tenancy")
