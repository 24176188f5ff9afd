"""rate counters: certificate fetches per administrator and fixed window (kernel/ratelimit.py)

Revision ID: 9e3b6f20c4a1
Revises: 7c2e9a51d0b4
Create Date: 2026-12-08 00:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '9e3b6f20c4a1'
down_revision = '7c2e9a51d0b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('proxmox_sync_rate_counters',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'window_start')
    )
    with op.batch_alter_table('proxmox_sync_rate_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proxmox_sync_rate_counters_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('proxmox_sync_rate_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proxmox_sync_rate_counters_expires_at'))

    op.drop_table('proxmox_sync_rate_counters')
