"""parked subjects: a change a target refused for one user's or group's data

Revision ID: 7c2e9a51d0b4
Revises: 34da9c4418e5
Create Date: 2026-12-07 20:10:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '7c2e9a51d0b4'
down_revision = '34da9c4418e5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('proxmox_sync_parked',
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('label', sa.String(length=512), nullable=True),
    sa.Column('error', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_refused_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('target', 'subject')
    )


def downgrade():
    op.drop_table('proxmox_sync_parked')
