"""platform settings are super admins' only: custom roles drop admin.settings

Revision ID: c3a1d7e9f2b4
Revises: c3a1d7e94f20
Create Date: 2026-12-07 17:20:00.000000

No tenant role may hold admin.settings any more (docs/security.md): stored custom roles lose it
(their version goes up, so an edit based on an older read is refused). A role that held nothing
else keeps its row with no permissions: it grants nothing, and its holders stay visible to
administrators. The built-in roles live in code. Not reversible: the permission is not given back.
"""
from alembic import op
import sqlalchemy as sa


revision = 'c3a1d7e9f2b4'
down_revision = 'c3a1d7e94f20'
branch_labels = None
depends_on = None

PLATFORM_ONLY = "admin.settings"

roles = sa.table("rbac_roles", sa.column("id", sa.String), sa.column("permissions", sa.JSON),
                 sa.column("version", sa.Integer))


def upgrade():
    bind = op.get_bind()
    for role_id, permissions, version in bind.execute(sa.select(roles.c.id, roles.c.permissions, roles.c.version)).all():
        if permissions and PLATFORM_ONLY in permissions:
            kept = sorted(p for p in permissions if p != PLATFORM_ONLY)
            bind.execute(roles.update().where(roles.c.id == role_id).values(permissions=kept,
                                                                            version=(version or 1) + 1))


def downgrade():
    pass  # the permission is not handed back
