"""RBAC's tables: role assignments (one role per user and tenant)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kernel.db import kernel_tables


class Base(DeclarativeBase):
    metadata = sa.MetaData()


metadata = Base.metadata
kernel_tables(metadata, "rbac")


class RoleAssignment(Base):
    __tablename__ = "rbac_role_assignments"

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(64))
    assigned_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
