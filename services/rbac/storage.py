"""RBAC's tables: role assignments (one role per user and tenant)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import service_base


Base = service_base("rbac")
metadata = Base.metadata


class RoleAssignment(Base):
    __tablename__ = "rbac_role_assignments"

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(64))
    assigned_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
