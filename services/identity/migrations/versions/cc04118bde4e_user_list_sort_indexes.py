"""user list sort indexes: (key, id) for every sort key of identity_users

The user list orders by its sort key, then by id, and a page resumes after the last
row's (key, id) (keyset cursors). An index on the key alone makes SQLite sort each run of
equal keys (80,000 active users sorted by status) before the first page and cannot seek
to (key, id); (key, id) gives the page in index order from where the last one ended.
They replace the indexes on the key alone (which they also serve). Username and email
are unique already. Plain index operations (no batch mode): identity_users is never
recreated, so the FTS5 search triggers on it stay. Existing users are indexed as the
indexes are built.

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
    op.create_index('ix_identity_users_sort_created_at', 'identity_users', ['created_at', 'id'])
    op.create_index('ix_identity_users_sort_last_login_at', 'identity_users', ['last_login_at', 'id'])
    op.drop_index('ix_identity_users_name', table_name='identity_users')
    op.drop_index('ix_identity_users_status', table_name='identity_users')
    op.drop_index('ix_identity_users_created_at', table_name='identity_users')
    op.drop_index('ix_identity_users_last_login_at', table_name='identity_users')


def downgrade():
    op.create_index('ix_identity_users_last_login_at', 'identity_users', ['last_login_at'])
    op.create_index('ix_identity_users_created_at', 'identity_users', ['created_at'])
    op.create_index('ix_identity_users_status', 'identity_users', ['status'])
    op.create_index('ix_identity_users_name', 'identity_users', ['first_name', 'last_name'])
    op.drop_index('ix_identity_users_sort_last_login_at', table_name='identity_users')
    op.drop_index('ix_identity_users_sort_created_at', table_name='identity_users')
    op.drop_index('ix_identity_users_sort_totp', table_name='identity_users')
    op.drop_index('ix_identity_users_sort_status', table_name='identity_users')
    op.drop_index('ix_identity_users_sort_name', table_name='identity_users')
