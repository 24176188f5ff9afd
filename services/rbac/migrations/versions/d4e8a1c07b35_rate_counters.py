"""rate counters: attempts at group names and GIDs per administrator and fixed window (kernel/ratelimit.py)

Revision ID: d4e8a1c07b35
Revises: c3a1d7e9f2b4
Create Date: 2026-12-07 23:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = 'd4e8a1c07b35'
down_revision = 'c3a1d7e9f2b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rbac_rate_counters',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'window_start')
    )
    with op.batch_alter_table('rbac_rate_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rbac_rate_counters_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('rbac_rate_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rbac_rate_counters_expires_at'))

    op.drop_table('rbac_rate_counters')
