"""user list sort indexes: (key, id) for the keys with long runs of equal values

The user list breaks ties of its sort key by id. An index on the key alone makes SQLite
sort each run of equal keys (80,000 active users sorted by status) before the first
page; (key, id) gives the page in index order. (status, id) also serves the status
filter, so the status index goes; likewise the name index gains the id. Plain index
operations (no batch mode): identity_users is never recreated, so the FTS5 search
triggers on it stay. Existing users are indexed as the indexes are built.

Revision ID: cc04118bde4e
Revises: 2245209bb580
Create Date: 2026-12-04 02:53:33.928148
"""
from alembic import op


revision = 'cc04118bde4e'
down_revision = '2245209bb580'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_identity_users_sort_name', 'identity_users', ['first_name', 'last_name', 'id'])
    op.create_index('ix_identity_users_sort_status', 'identity_users', ['status', 'id'])
    op.create_index('ix_identity_users_sort_totp', 'identity_users', ['totp_enrolled', 'id'])
    op.drop_index('ix_identity_users_name', table_name='identity_users')
    op.drop_index('ix_identity_users_status', table_name='identity_users')


def downgrade():
    op.create_index('ix_identity_users_status', 'identity_users', ['status'])
    op.create_index('ix_identity_users_name', 'identity_users', ['first_name', 'last_name'])
    op.drop_index('ix_identity_users_sort_totp', table_name='identity_users')
    op.drop_index('ix_identity_users_sort_status', table_name='identity_users')
    op.drop_index('ix_identity_users_sort_name', table_name='identity_users')
