"""RBAC's tables: role assignments (one role per user and tenant), LDAP groups and their members."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from kernel.db import service_base


Base = service_base("rbac")
metadata = Base.metadata


class RoleAssignment(Base):
    __tablename__ = "rbac_role_assignments"

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(64), index=True)
    # The first admin's super_admin: nobody changes or removes it.
    locked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    assigned_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class Group(Base):
    """An LDAP posixGroup: cn and gidNumber are what containers see."""

    __tablename__ = "rbac_groups"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    cn: Mapped[str] = mapped_column(sa.String(64), unique=True)
    gid_number: Mapped[int] = mapped_column(sa.Integer, unique=True)
    description: Mapped[str] = mapped_column(sa.String(256), default="")
    is_admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    builtin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class GroupMember(Base):
    __tablename__ = "rbac_group_members"

    group_id: Mapped[str] = mapped_column(sa.ForeignKey("rbac_groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, index=True)
    # Kept so events and lists can name the member without asking identity.
    username: Mapped[str | None] = mapped_column(sa.String(32))
    added_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


def group_by_cn(session: Session, cn: str) -> Group | None:
    return session.scalars(sa.select(Group).where(Group.cn == cn)).first()


def memberships_of(session: Session, user_id: str) -> list[Group]:
    return list(session.scalars(sa.select(Group).join(GroupMember, GroupMember.group_id == Group.id)
                                .where(GroupMember.user_id == user_id).order_by(Group.cn)))
