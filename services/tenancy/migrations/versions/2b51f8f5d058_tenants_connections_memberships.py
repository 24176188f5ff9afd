"""tenants, Proxmox VE connections, memberships, the multi-tenancy switch

Writes the `default` tenant and the switch (off), so every connection and membership
always has a tenant, before and after multi-tenancy is enabled.

Revision ID: 2b51f8f5d058
Revises: 4f4b9055b9a0
Create Date: 2026-11-23 22:45:49.073353
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '2b51f8f5d058'
down_revision = '4f4b9055b9a0'
branch_labels = None
depends_on = None


def upgrade():
    state = op.create_table('tenancy_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('changed_by', sa.String(length=36), nullable=True),
    sa.Column('changed_by_name', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    tenants = op.create_table('tenancy_tenants',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('name_key', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name_key')
    )
    op.create_table('tenancy_connections',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('name_key', sa.String(length=64), nullable=False),
    sa.Column('url', sa.String(length=255), nullable=False),
    sa.Column('verify_tls', sa.Boolean(), nullable=False),
    sa.Column('ca_pem', sa.Text(), nullable=True),
    sa.Column('fingerprint', sa.String(length=95), nullable=True),
    sa.Column('auth_method', sa.String(length=16), nullable=False),
    sa.Column('login', sa.String(length=160), nullable=False),
    sa.Column('secret_sealed', sa.Text(), nullable=False),
    sa.Column('realm', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenancy_tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name_key')
    )
    with op.batch_alter_table('tenancy_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tenancy_connections_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('tenancy_memberships',
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=True),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenancy_tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'user_id')
    )
    with op.batch_alter_table('tenancy_memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tenancy_memberships_user_id'), ['user_id'], unique=False)

    now = datetime.now(timezone.utc)
    op.bulk_insert(state, [{"id": 1, "enabled": False}])
    op.bulk_insert(tenants, [{"id": "default", "name": "Default", "name_key": "default", "description": "",
                              "created_at": now, "updated_at": now, "version": 1}])


def downgrade():
    with op.batch_alter_table('tenancy_memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenancy_memberships_user_id'))

    op.drop_table('tenancy_memberships')
    with op.batch_alter_table('tenancy_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenancy_connections_tenant_id'))

    op.drop_table('tenancy_connections')
    op.drop_table('tenancy_tenants')
    op.drop_table('tenancy_state')
