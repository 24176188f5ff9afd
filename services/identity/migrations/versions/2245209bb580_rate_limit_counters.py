"""rate limit counters: units used per key and fixed window (mail and registration limits)

Revision ID: 2245209bb580
Revises: f5ee3109f171
Create Date: 2026-11-24 04:11:42.701391
"""
from alembic import op
import sqlalchemy as sa


revision = '2245209bb580'
down_revision = 'f5ee3109f171'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('identity_rate_counters',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'window_start')
    )
    with op.batch_alter_table('identity_rate_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_rate_counters_expires_at'), ['expires_at'], unique=False)



def downgrade():
    with op.batch_alter_table('identity_rate_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_rate_counters_expires_at'))

    op.drop_table('identity_rate_counters')
