"""search indexes: actor name, resource id, free text

Free-text search (`q`) is a case-insensitive substring match on `search_text`, which a
B-tree cannot serve: over a million records a LIKE '%x%' reads the whole table. So:

- SQLite: a contentless FTS5 index with the trigram tokenizer, `audit_search` (rowid =
  seq). It is filled behind the appender by the audit service's search indexer
  (services/audit/queries.py), in batches: indexing inside the append transaction
  costs ~150 us per record (FTS5 flushes a segment per statement) and would halve the
  ingest rate. Its highest rowid is how far it got; queries scan the few records above
  it. Triggers remove indexed records that are deleted (retention) or edited.
- PostgreSQL: a pg_trgm GIN index on `search_text`, which serves LIKE '%x%' directly.

Neither can be declared in storage.py; kernel.migrate.unmodelled_names lets schema
comparisons skip them. A later SQLite batch migration that rebuilds audit_records drops
its triggers with it: such a migration must create them again (SQLITE_TRIGGERS).

Revision ID: 29c8b0166315
Revises: cc5fc29fe680
Create Date: 2026-11-23 22:27:00.186138
"""
from alembic import op


revision = '29c8b0166315'
down_revision = 'cc5fc29fe680'
branch_labels = None
depends_on = None

# A contentless index forgets a row only when told the text it indexed; rows above its
# highest rowid were never indexed and must not be "deleted" from it.
INDEXED = "old.seq <= (SELECT max(rowid) FROM audit_search)"
FORGET = "INSERT INTO audit_search(audit_search, rowid, search_text) VALUES ('delete', old.seq, old.search_text);"
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER audit_search_delete AFTER DELETE ON audit_records WHEN {INDEXED} BEGIN {FORGET} END",
    f"CREATE TRIGGER audit_search_update AFTER UPDATE OF seq, search_text ON audit_records WHEN {INDEXED} BEGIN "
    f"{FORGET} INSERT INTO audit_search(rowid, search_text) VALUES (new.seq, new.search_text); END",
)
SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE audit_search USING fts5(search_text, content='', tokenize='trigram')",
    *SQLITE_TRIGGERS,
    "INSERT INTO audit_search(rowid, search_text) SELECT seq, search_text FROM audit_records ORDER BY seq",
)
POSTGRES_SEARCH = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",  # a trusted extension: the database owner may create it
    "CREATE INDEX ix_audit_records_search_trgm ON audit_records USING gin (search_text gin_trgm_ops)",
)


def upgrade():
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.create_index('ix_audit_records_actor_username_seq', ['actor_username', 'seq'], unique=False)
        batch_op.create_index('ix_audit_records_resource_id_seq', ['resource_id', 'seq'], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in {'sqlite': SQLITE_SEARCH, 'postgresql': POSTGRES_SEARCH}.get(dialect, ()):
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for trigger in ('audit_search_delete', 'audit_search_update'):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS audit_search")
    elif dialect == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_audit_records_search_trgm")
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_records_resource_id_seq')
        batch_op.drop_index('ix_audit_records_actor_username_seq')
