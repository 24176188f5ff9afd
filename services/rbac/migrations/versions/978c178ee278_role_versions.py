"""role versions

Revision ID: 978c178ee278
Revises: 45bbad2e84c4
Create Date: 2026-12-04 02:48:18.750909
"""
from alembic import op
import sqlalchemy as sa


revision = '978c178ee278'
down_revision = '45bbad2e84c4'
branch_labels = None
depends_on = None


def upgrade():
    # Existing roles start at version 1, as new ones do.
    with op.batch_alter_table('rbac_roles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))


def downgrade():
    with op.batch_alter_table('rbac_roles', schema=None) as batch_op:
        batch_op.drop_column('version')
