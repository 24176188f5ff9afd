"""The audit-query bench seeds its store without storage.append (for speed): what it stores
must be exactly what append stores, and the chain must verify."""
from __future__ import annotations

import sqlalchemy as sa

from bench import audit_query
from kernel import migrate
from kernel.db import create_engine
from services.audit import chain, storage

TABLES = ("audit_records", "audit_record_tenants", "audit_chain_head")


def _dump(url: str) -> dict:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {table: conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1, 2").all() for table in TABLES}
    finally:
        engine.dispose()


def test_the_bench_seed_stores_what_append_stores_and_the_chain_verifies(tmp_path, monkeypatch):
    rows = list(audit_query.records(2000))  # event ids and times are new on each call: made once for both
    monkeypatch.setattr(audit_query, "records", lambda count: iter(rows[:count]))  # the forked maker sees it too
    monkeypatch.setattr(audit_query, "SEED_BATCH", 700)  # several batches, the last one short
    seeded, appended = f"sqlite:///{tmp_path / 'seeded.db'}", f"sqlite:///{tmp_path / 'appended.db'}"
    audit_query.seed(seeded, 2000, say=lambda _: None)

    migrate.upgrade("audit", appended)
    engine = create_engine(appended)
    with engine.begin() as conn:
        for start in range(0, len(rows), 700):
            storage.append(conn, rows[start:start + 700])
    with engine.begin() as conn:
        first, start_hash = storage.chain_start(conn)
        assert chain.first_break(start_hash, first, storage.chained_records(conn, first, 500)) is None
        assert conn.execute(sa.select(sa.func.count()).select_from(storage.AuditRecord)).scalar() == 2000
    engine.dispose()

    mine, theirs = _dump(seeded), _dump(appended)
    assert mine == theirs
    assert len(mine["audit_record_tenants"]) > 1000
