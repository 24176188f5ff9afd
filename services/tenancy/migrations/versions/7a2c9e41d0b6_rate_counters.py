"""rate counters: attempts at connection names per administrator and fixed window (kernel/ratelimit.py)

Revision ID: 7a2c9e41d0b6
Revises: 2b51f8f5d058
Create Date: 2026-12-07 23:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '7a2c9e41d0b6'
down_revision = '2b51f8f5d058'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('tenancy_rate_counters',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'window_start')
    )
    with op.batch_alter_table('tenancy_rate_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tenancy_rate_counters_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('tenancy_rate_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenancy_rate_counters_expires_at'))

    op.drop_table('tenancy_rate_counters')
