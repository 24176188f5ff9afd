"""inventory: the Proxmox VE inventory (nodes, guests, storages) and how each connection's polls went

Revision ID: 61dfacab76bd
Revises: d15a16f459df
Create Date: 2026-11-24 01:30:50.376004
"""
from alembic import op
import sqlalchemy as sa


revision = '61dfacab76bd'
down_revision = 'd15a16f459df'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('proxmox_sync_inventory',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('vmid', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('connection_id', 'kind', 'key', name='uq_proxmox_sync_inventory_item')
    )
    with op.batch_alter_table('proxmox_sync_inventory', schema=None) as batch_op:
        batch_op.create_index('ix_proxmox_sync_inventory_tenant_kind', ['tenant_id', 'kind'], unique=False)

    op.create_table('proxmox_sync_inventory_status',
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('succeeded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('connection_id')
    )
    with op.batch_alter_table('proxmox_sync_inventory_status', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proxmox_sync_inventory_status_tenant_id'), ['tenant_id'], unique=False)



def downgrade():
    with op.batch_alter_table('proxmox_sync_inventory_status', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proxmox_sync_inventory_status_tenant_id'))

    op.drop_table('proxmox_sync_inventory_status')
    with op.batch_alter_table('proxmox_sync_inventory', schema=None) as batch_op:
        batch_op.drop_index('ix_proxmox_sync_inventory_tenant_kind')

    op.drop_table('proxmox_sync_inventory')
