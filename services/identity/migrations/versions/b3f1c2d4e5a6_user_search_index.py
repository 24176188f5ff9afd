"""user search index: trigram search for the user list, role index

The user list's free-text search is a substring match on `search_text`. A plain
LIKE '%x%' scans every user; a trigram index answers it from the index instead:
SQLite's FTS5 trigram tokenizer (a shadow table kept in step by triggers), and
pg_trgm's GIN index on PostgreSQL (which serves LIKE directly).

Revision ID: b3f1c2d4e5a6
Revises: 7548904ae1de
Create Date: 2026-11-23 22:50:00
"""
from alembic import op


revision = 'b3f1c2d4e5a6'
down_revision = '7548904ae1de'
branch_labels = None
depends_on = None

# The FTS table keys rows by user id, not by rowid: identity_users has no INTEGER
# PRIMARY KEY, so its rowids may change on VACUUM.
SQLITE_UP = (
    "CREATE VIRTUAL TABLE identity_users_search USING fts5(search_text, user_id UNINDEXED, tokenize='trigram')",
    "INSERT INTO identity_users_search (search_text, user_id) SELECT search_text, id FROM identity_users",
    """CREATE TRIGGER identity_users_search_insert AFTER INSERT ON identity_users BEGIN
        INSERT INTO identity_users_search (search_text, user_id) VALUES (new.search_text, new.id);
    END""",
    """CREATE TRIGGER identity_users_search_delete AFTER DELETE ON identity_users BEGIN
        DELETE FROM identity_users_search WHERE user_id = old.id;
    END""",
    """CREATE TRIGGER identity_users_search_update AFTER UPDATE OF search_text, id ON identity_users
    WHEN old.search_text IS NOT new.search_text OR old.id IS NOT new.id BEGIN
        DELETE FROM identity_users_search WHERE user_id = old.id;
        INSERT INTO identity_users_search (search_text, user_id) VALUES (new.search_text, new.id);
    END""",
)

SQLITE_DOWN = (
    "DROP TRIGGER identity_users_search_update",
    "DROP TRIGGER identity_users_search_delete",
    "DROP TRIGGER identity_users_search_insert",
    "DROP TABLE identity_users_search",
)


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_identity_users_search_trgm ON identity_users USING gin (search_text gin_trgm_ops)")
    op.create_index("ix_identity_user_roles_tenant_role", "identity_user_roles", ["tenant_id", "role", "user_id"])


def downgrade():
    op.drop_index("ix_identity_user_roles_tenant_role", table_name="identity_user_roles")
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
    else:
        op.execute("DROP INDEX ix_identity_users_search_trgm")
