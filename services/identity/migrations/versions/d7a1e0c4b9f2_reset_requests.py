"""reset requests: self-service password reset requests, handled after the answer

POST /auth/password-reset answers once the request is stored; the mailer looks the
account up afterwards, so known and unknown addresses answer alike, in time too.

Revision ID: d7a1e0c4b9f2
Revises: cc04118bde4e
Create Date: 2026-12-07 17:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


revision = 'd7a1e0c4b9f2'
down_revision = 'cc04118bde4e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'identity_reset_requests',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('actor', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_identity_reset_requests_created_at', 'identity_reset_requests', ['created_at'])


def downgrade():
    op.drop_index('ix_identity_reset_requests_created_at', table_name='identity_reset_requests')
    op.drop_table('identity_reset_requests')
