"""RBAC's tables: custom roles, role assignments (one role per user and tenant, optionally scoped),
LDAP groups and their members, and the grant generation. Built-in roles live in code (domain.BUILTIN_ROLES)."""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from kernel import ratelimit
from kernel.db import service_base
from contracts.rbac import SUPER_ADMIN

Base = service_base("rbac")
metadata = Base.metadata
# Attempts at a group name or GID per administrator and window (GATEHOUSE_GROUP_NAMES_PER_ADMIN).
rate_counters = ratelimit.counter_table(metadata, "rbac_rate_counters")


class RoleAssignment(Base):
    __tablename__ = "rbac_role_assignments"

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    # The role's name: built-in, global custom, or custom of this tenant (names never clash).
    role: Mapped[str] = mapped_column(sa.String(64), index=True)
    # The first admin's super_admin: nobody changes or removes it.
    locked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # {"connections": [...], "nodes": [...], "storages": [...], "vms": [...]}; empty lists mean everything.
    scope: Mapped[dict] = mapped_column(sa.JSON, default=dict, server_default=sa.text("'{}'"))
    assigned_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class Role(Base):
    """A custom role: global (tenant_id NULL, made by a super admin) or of one tenant.

    The name is fixed once created: assignments and events name roles by it.
    """

    __tablename__ = "rbac_roles"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), index=True)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    description: Mapped[str] = mapped_column(sa.String(256), default="")
    permissions: Mapped[list] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    # Bumped by every change: the ETag an edit's If-Match must name (a stale edit gets 412).
    version: Mapped[int] = mapped_column(sa.Integer, default=1)


class Group(Base):
    """An LDAP posixGroup: cn and gidNumber are what containers see.

    A group belongs to one tenant (tenant_id), or is platform-wide (NULL: the built-in groups
    and those a super admin creates as such). cn and GID stay unique across the directory: one
    LDAP directory holds every tenant's groups.
    """

    __tablename__ = "rbac_groups"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
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


class GrantGeneration(Base):
    """One row (id 1) counting the changes to the tables decisions are made of (GRANT_TABLES).

    Database triggers (migration bb56e186b39f) bump it in the transaction of every insert,
    update and delete there, whoever writes: a process may answer from its grant cache
    (services/rbac/grant_cache.py) while the count it reads is the one it cached under.
    """

    __tablename__ = "rbac_grant_generation"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(sa.BigInteger)


# What a grant is made of: a write to any of these changes the generation.
GRANT_TABLES = (RoleAssignment.__tablename__, Role.__tablename__, Group.__tablename__, GroupMember.__tablename__)
GRANT_GENERATION_ID = 1


def group_by_cn(session: Session, cn: str) -> Group | None:
    """The group called `cn` in the whole directory (any tenant): for uniqueness only."""
    return session.scalars(sa.select(Group).where(Group.cn == cn)).first()


def group_by_gid(session: Session, gid_number: int) -> Group | None:
    """The group holding `gid_number` in the whole directory (any tenant): for uniqueness only."""
    return session.scalars(sa.select(Group).where(Group.gid_number == gid_number)).first()


def in_tenant(tenant_id: str | None):
    """Where-clause: the groups seen from the tenant (its own and the platform-wide ones); None: every group."""
    if tenant_id is None:
        return sa.true()
    return sa.or_(Group.tenant_id.is_(None), Group.tenant_id == tenant_id)


def visible_group_by_cn(session: Session, cn: str, tenant_id: str) -> Group | None:
    """The group called `cn` as seen from the tenant; another tenant's is no group there."""
    return session.scalars(sa.select(Group).where(Group.cn == cn, in_tenant(tenant_id))).first()


def visible_groups(session: Session, tenant_id: str) -> list[Group]:
    return list(session.scalars(sa.select(Group).where(in_tenant(tenant_id)).order_by(Group.gid_number)))


def groups_of_tenant(session: Session, tenant_id: str) -> list[Group]:
    """The tenant's own groups (not the platform-wide ones)."""
    return list(session.scalars(sa.select(Group).where(Group.tenant_id == tenant_id).order_by(Group.gid_number)))


def memberships_of(session: Session, user_id: str, tenant_id: str | None = None) -> list[Group]:
    """The user's groups: every one (tenant_id None) or those seen from the tenant."""
    return list(session.scalars(sa.select(Group).join(GroupMember, GroupMember.group_id == Group.id)
                                .where(GroupMember.user_id == user_id, in_tenant(tenant_id)).order_by(Group.cn)))


def custom_role(session: Session, name: str, tenant_id: str) -> Role | None:
    """The custom role called `name` that users of the tenant can hold: global or the tenant's own."""
    return session.scalars(sa.select(Role).where(
        Role.name == name, sa.or_(Role.tenant_id.is_(None), Role.tenant_id == tenant_id))).first()


def roles_named(session: Session, name: str) -> list[Role]:
    return list(session.scalars(sa.select(Role).where(Role.name == name)))


def visible_roles(session: Session, tenant_id: str) -> list[Role]:
    return list(session.scalars(sa.select(Role).where(
        sa.or_(Role.tenant_id.is_(None), Role.tenant_id == tenant_id)).order_by(Role.name)))


def assignment_counts(session: Session, tenant_id: str | None = None) -> dict[str, int]:
    """Users holding each role name (in one tenant, or anywhere)."""
    query = sa.select(RoleAssignment.role, sa.func.count()).group_by(RoleAssignment.role)
    if tenant_id is not None:
        query = query.where(RoleAssignment.tenant_id == tenant_id)
    return dict(session.execute(query).all())


def member_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(sa.select(GroupMember.group_id, sa.func.count()).group_by(GroupMember.group_id)).all())


def grant_generation(db: Session | sa.Connection) -> int | None:
    """The grant generation now (None if its row is missing: then nothing may be cached)."""
    return db.execute(_GENERATION).scalar()


class GrantInputs(NamedTuple):
    role: str | None  # the user's role in the tenant
    scope: dict | None  # of that assignment
    custom_permissions: list | None  # the role's, if it is a custom role visible in the tenant
    super_admin: bool  # super_admin in any tenant, or member of an administrator group


def grant_inputs(db: Session | sa.Connection, user_id: str, tenant_id: str) -> GrantInputs:
    """Everything a decision about the user in the tenant depends on, in one query."""
    row = db.execute(_GRANT_INPUTS, {"user_id": user_id, "tenant_id": tenant_id}).one()
    return GrantInputs(row.role, row.scope, row.custom_permissions, bool(row.super_admin))


def _grant_inputs_query() -> sa.Select:
    assignments, roles = RoleAssignment.__table__, Role.__table__
    members, groups = GroupMember.__table__, Group.__table__
    user_id, tenant_id = sa.bindparam("user_id"), sa.bindparam("tenant_id")
    assignment = sa.select(assignments.c.role, assignments.c.scope).where(
        assignments.c.user_id == user_id, assignments.c.tenant_id == tenant_id).subquery("assignment")
    custom_permissions = sa.select(roles.c.permissions).where(
        roles.c.name == assignment.c.role, sa.or_(roles.c.tenant_id.is_(None), roles.c.tenant_id == tenant_id)
    ).limit(1).scalar_subquery()
    super_admin = sa.or_(
        sa.exists().where(assignments.c.user_id == user_id, assignments.c.role == SUPER_ADMIN),
        sa.exists().where(members.c.user_id == user_id, members.c.group_id == groups.c.id, groups.c.is_admin.is_(True)))
    one_row = sa.select(sa.literal(1).label("one")).subquery("one_row")  # a row even without an assignment
    return sa.select(assignment.c.role, assignment.c.scope, custom_permissions.label("custom_permissions"),
                     super_admin.label("super_admin")).select_from(one_row.outerjoin(assignment, sa.true()))


# Built once: SQLAlchemy then reuses their compiled form.
_GRANT_INPUTS = _grant_inputs_query()
_GENERATION = sa.select(GrantGeneration.__table__.c.value).where(GrantGeneration.__table__.c.id == GRANT_GENERATION_ID)


def super_admin_ids(session: Session) -> set[str]:
    """Every super admin: super_admin in some tenant, or member of an administrator group."""
    by_role = session.scalars(sa.select(RoleAssignment.user_id).where(RoleAssignment.role == SUPER_ADMIN))
    by_group = session.scalars(sa.select(GroupMember.user_id).join(Group, Group.id == GroupMember.group_id)
                               .where(Group.is_admin.is_(True)))
    return set(by_role) | set(by_group)


def groups_with_members(session: Session, user_ids: list[str] | None = None,
                        tenant_id: str | None = None) -> list[tuple[Group, list[str]]]:
    """Groups (every one, or those seen from the tenant) with their members (only `user_ids` when given)."""
    members: dict[str, list[str]] = {}
    query = sa.select(GroupMember.group_id, GroupMember.user_id)
    if user_ids is not None:
        query = query.where(GroupMember.user_id.in_(list(user_ids)))
    for group_id, user_id in session.execute(query):
        members.setdefault(group_id, []).append(user_id)
    groups = session.scalars(sa.select(Group).where(in_tenant(tenant_id)).order_by(Group.gid_number))
    return [(group, members.get(group.id, [])) for group in groups]
