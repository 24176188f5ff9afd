"""groups belong to a tenant: rbac_groups.tenant_id (NULL: platform-wide)

Existing groups other than the built-in ones move into `default` (the tenant every
installation had before groups were confined); ldapusers and sysadmins stay platform-wide.
cn and gid_number stay unique across the directory (one LDAP directory holds every group).
Memberships are kept as they are: rbac's database does not know tenancy's memberships, so a
member of a moved group who is not in `default` stays listed there until an administrator
removes them (Proxmox VE mirrors a group's members among its tenant's members only anyway).

SQLite: adding a nullable column and an index needs no table rebuild, but should batch mode
ever rebuild rbac_groups, its grant-generation triggers (bb56e186b39f) would go with it: they
are dropped if present and created again, so the table bumps the generation at head either way
(tests/unit/test_rbac_grant_cache.py checks it).

Revision ID: c3a1d7e94f20
Revises: bb56e186b39f
Create Date: 2026-12-07 17:10:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = 'c3a1d7e94f20'
down_revision = 'bb56e186b39f'
branch_labels = None
depends_on = None

DEFAULT_TENANT_ID = 'default'  # frozen copy of kernel.DEFAULT_TENANT_ID
BUMP = "UPDATE rbac_grant_generation SET value = value + 1 WHERE id = 1"  # as in bb56e186b39f
SQLITE_OPERATIONS = ('insert', 'update', 'delete')


def _sqlite_triggers_again(table):
    for operation in SQLITE_OPERATIONS:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_grant_generation_{operation}")
        op.execute(f"CREATE TRIGGER {table}_grant_generation_{operation} AFTER {operation.upper()} ON {table} "
                   f"BEGIN {BUMP}; END")


def upgrade():
    with op.batch_alter_table('rbac_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_rbac_groups_tenant_id'), ['tenant_id'], unique=False)
    groups = sa.table('rbac_groups', sa.column('tenant_id'), sa.column('builtin'))
    op.execute(groups.update().where(groups.c.builtin.is_(sa.false())).values(tenant_id=DEFAULT_TENANT_ID))
    if op.get_bind().dialect.name == 'sqlite':
        _sqlite_triggers_again('rbac_groups')


def downgrade():
    with op.batch_alter_table('rbac_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rbac_groups_tenant_id'))
        batch_op.drop_column('tenant_id')
    if op.get_bind().dialect.name == 'sqlite':
        _sqlite_triggers_again('rbac_groups')
