"""The audit store's writer side without a broker: appends, verify, retention, poison isolation."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from kernel.db import create_engine
from kernel.envelope import Actor, Event, Resource
from services.audit import chain, deadletters, events, retention, storage
from services.audit.ingest import decode, retry_later, store_isolating

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    storage.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(storage.ChainHead).values(id=1, seq=0, hash=chain.GENESIS))  # as the migration does
    yield engine
    engine.dispose()


def event(n: int, tenants=("default",)) -> Event:
    return Event(type="identity.user_updated", source="identity", category="users",
                 actor=Actor(user_id="u1", username="alice", display_name="Alice A", email="alice@example.com"),
                 resource=Resource("user", f"user-{n}", f"name{n}"), data={"n": n, "nested": {"k": [1, 2]}},
                 tenant_ids=tenants)


def append(engine, events_, recorded_at=NOW) -> int:
    with engine.connect() as conn:
        storage.begin_write(conn)
        stored = storage.append(conn, [storage.record_from_event(e, recorded_at) for e in events_])
        conn.commit()
    return stored


def verify(engine, chunk=3) -> dict:
    with engine.connect() as conn:
        storage.begin_snapshot(conn)
        return storage.verify(conn, chunk=chunk)  # small chunks: the walk crosses query boundaries


def purge(engine, retention_days=30, limit=retention.PURGE_BATCH, now=NOW):
    with engine.connect() as conn:
        storage.begin_write(conn)
        purged = storage.purge(conn, retention.cutoff(now, retention_days), now, limit)
        conn.commit()
    return purged


def sql(engine, statement, **params):
    with engine.begin() as conn:
        return conn.execute(sa.text(statement), params)


def event_id_at(engine, seq):
    return sql(engine, "SELECT event_id FROM audit_records WHERE seq = :seq", seq=seq).scalar_one()


# --- append and verify -----------------------------------------------------------

def test_empty_store_is_valid(engine):
    assert verify(engine) == {"valid": True, "checked": 0, "start_seq": 1, "head_seq": 0, "first_break": None}


def test_appended_batches_form_one_valid_chain(engine):
    assert append(engine, [event(i) for i in range(5)]) == 5
    assert append(engine, [event(i) for i in range(5, 11)]) == 6
    assert verify(engine) == {"valid": True, "checked": 11, "start_seq": 1, "head_seq": 11, "first_break": None}


def test_redelivered_and_repeated_event_ids_are_stored_once(engine):
    first, fourth = [event(i) for i in range(3)], event(3)
    append(engine, first)
    assert append(engine, [first[1], fourth, fourth, first[2]]) == 1
    assert sql(engine, "SELECT count(*) FROM audit_records").scalar_one() == 4
    assert verify(engine)["valid"]


@pytest.mark.parametrize("column, value", [
    ("resource_name", "'someone else'"),
    ("data", "'{\"n\": 999}'"),
    ("actor_email", "NULL"),
    ("recorded_at", "'2026-01-01 00:00:00.000000'"),
])
def test_an_edited_record_is_named(engine, column, value):
    append(engine, [event(i) for i in range(8)])
    sql(engine, f"UPDATE audit_records SET {column} = {value} WHERE seq = 5")
    result = verify(engine)
    assert result["valid"] is False
    assert result["first_break"] == {"seq": 5, "event_id": event_id_at(engine, 5), "reason": "content_changed"}


def test_an_edited_record_with_a_recomputed_hash_breaks_the_next_link(engine):
    append(engine, [event(i) for i in range(6)])
    with engine.begin() as conn:
        third = storage.AuditRecord.seq == 3
        row = conn.execute(sa.select(storage.AuditRecord.__table__).where(third)).mappings().one()
        forged = {**row, "resource_name": "forged"}
        forged_hash = chain.record_hash(row["prev_hash"], chain.content_of(forged))
        conn.execute(sa.update(storage.AuditRecord).where(third).values(resource_name="forged", hash=forged_hash))
    assert verify(engine)["first_break"] == {"seq": 4, "event_id": event_id_at(engine, 4), "reason": "link_broken"}


def test_a_deleted_record_is_a_gap_named_by_the_next(engine):
    append(engine, [event(i) for i in range(6)])
    sql(engine, "DELETE FROM audit_records WHERE seq = 4")
    assert verify(engine)["first_break"] == {"seq": 5, "event_id": event_id_at(engine, 5), "reason": "sequence_gap"}


def test_records_removed_from_the_end_disagree_with_the_head(engine):
    append(engine, [event(i) for i in range(6)])
    sql(engine, "DELETE FROM audit_records WHERE seq >= 5")
    result = verify(engine)
    assert result["first_break"] == {"seq": 5, "event_id": None, "reason": "head_mismatch"}
    assert result["checked"] == 4 and result["head_seq"] == 6


def test_a_record_forged_past_the_head_is_named(engine):
    append(engine, [event(i) for i in range(3)])
    with engine.begin() as conn:
        head = conn.execute(sa.select(storage.ChainHead.seq, storage.ChainHead.hash)).one()
        conn.execute(sa.update(storage.ChainHead).values(seq=head.seq - 1))  # as if the head were rolled back
    result = verify(engine)
    assert result["first_break"] == {"seq": 3, "event_id": event_id_at(engine, 3), "reason": "head_mismatch"}


def test_an_edited_head_is_reported(engine):
    append(engine, [event(i) for i in range(3)])
    sql(engine, "UPDATE audit_chain_head SET hash = :h", h="f" * 64)
    assert verify(engine)["first_break"] == {"seq": 3, "event_id": event_id_at(engine, 3), "reason": "head_mismatch"}


def test_verify_reads_one_snapshot_while_appends_go_on(engine):
    append(engine, [event(i) for i in range(10)])
    with engine.connect() as conn:
        storage.begin_snapshot(conn)
        walk = storage.chained_records(conn, 1, chunk=2)
        next(walk)  # the snapshot is taken
        append(engine, [event(i) for i in range(10, 20)])  # another connection appends meanwhile
        assert len(list(walk)) == 9
        conn.rollback()
    assert verify(engine)["checked"] == 20


def test_the_tenant_index_follows_the_records(engine):
    append(engine, [event(1, ("t1", "t2")), event(2, ()), event(3, ("t2",))])
    rows = sql(engine, "SELECT tenant_id, seq FROM audit_record_tenants ORDER BY tenant_id, seq").all()
    assert [tuple(r) for r in rows] == [("t1", 1), ("t2", 1), ("t2", 3)]


def test_begin_write_takes_the_sqlite_write_lock_at_once(engine, tmp_path):
    with engine.connect() as conn:
        storage.begin_write(conn)
        other = sqlite3.connect(tmp_path / "audit.db", timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")  # a second writer waits for its turn (here: gives up at once)
        other.close()
        conn.rollback()


# --- retention -------------------------------------------------------------------

def test_cutoff_is_the_retention_before_now():
    assert retention.cutoff(NOW, 365) == NOW - timedelta(days=365)


def test_purge_removes_the_expired_prefix_and_keeps_the_chain_verifiable(engine):
    append(engine, [event(i) for i in range(4)], recorded_at=NOW - timedelta(days=40))
    append(engine, [event(i) for i in range(4, 7)], recorded_at=NOW - timedelta(days=10))
    fifth_prev = sql(engine, "SELECT prev_hash FROM audit_records WHERE seq = 5").scalar_one()

    assert purge(engine) == {"count": 4, "through_seq": 4, "start_seq": 5}

    assert [r[0] for r in sql(engine, "SELECT seq FROM audit_records ORDER BY seq")] == [5, 6, 7]
    assert sql(engine, "SELECT min(seq) FROM audit_record_tenants").scalar_one() == 5
    checkpoint = sql(engine, "SELECT start_seq, start_hash, purged FROM audit_chain_checkpoints").one()
    assert tuple(checkpoint) == (5, fifth_prev, 4)
    assert verify(engine) == {"valid": True, "checked": 3, "start_seq": 5, "head_seq": 7, "first_break": None}
    assert purge(engine) is None  # nothing else expired
    append(engine, [event(9)])
    assert verify(engine)["valid"]


def test_purge_stops_at_the_first_record_that_has_not_expired(engine):
    append(engine, [event(1)], recorded_at=NOW - timedelta(days=40))
    append(engine, [event(2)], recorded_at=NOW - timedelta(days=1))
    append(engine, [event(3)], recorded_at=NOW - timedelta(days=40))  # older clock, later in the chain: kept

    assert purge(engine)["count"] == 1

    assert [r[0] for r in sql(engine, "SELECT seq FROM audit_records ORDER BY seq")] == [2, 3]
    assert verify(engine)["valid"]


def test_purge_is_bounded_per_transaction_and_resumes_from_the_checkpoint(engine):
    append(engine, [event(i) for i in range(7)], recorded_at=NOW - timedelta(days=40))
    append(engine, [event(7)])
    assert purge(engine, limit=3)["through_seq"] == 3
    assert verify(engine)["start_seq"] == 4
    assert purge(engine, limit=3)["through_seq"] == 6
    assert purge(engine, limit=3) == {"count": 1, "through_seq": 7, "start_seq": 8}
    assert purge(engine, limit=3) is None
    assert verify(engine) == {"valid": True, "checked": 1, "start_seq": 8, "head_seq": 8, "first_break": None}


def test_purging_everything_leaves_an_empty_valid_chain_that_grows_again(engine):
    append(engine, [event(i) for i in range(3)], recorded_at=NOW - timedelta(days=40))
    assert purge(engine)["count"] == 3
    assert verify(engine) == {"valid": True, "checked": 0, "start_seq": 4, "head_seq": 3, "first_break": None}
    append(engine, [event(4)])
    assert verify(engine) == {"valid": True, "checked": 1, "start_seq": 4, "head_seq": 4, "first_break": None}


def test_a_purge_hides_no_tampering_after_the_checkpoint(engine):
    append(engine, [event(i) for i in range(3)], recorded_at=NOW - timedelta(days=40))
    append(engine, [event(i) for i in range(3, 6)])
    purge(engine)
    sql(engine, "UPDATE audit_records SET action = 'nothing' WHERE seq = 5")
    assert verify(engine)["first_break"] == {"seq": 5, "event_id": event_id_at(engine, 5), "reason": "content_changed"}


def test_the_purge_event_says_what_went_and_carries_no_secret():
    purged = events.records_purged(4, 4, NOW - timedelta(days=30), 30)
    assert purged.type == "audit.records_purged" and purged.category == "audit" and purged.source == "audit"
    assert purged.data == {"count": 4, "through_seq": 4, "cutoff": "2026-10-24T12:00:00Z", "retention_days": 30}
    assert purged.actor.username == "system"


# --- ingest: decoding and poison isolation -----------------------------------------

def test_decode_gives_the_stored_columns_of_an_event():
    row = decode(json.dumps(event(1).to_dict()).encode(), NOW)
    assert row["type"] == "identity.user_updated" and row["tenant_ids"] == ["default"] and row["recorded_at"] == NOW
    assert row["search_text"] == "alice alice a alice@example.com name1 user_updated"


@pytest.mark.parametrize("body", [
    b"{not json", b"[1, 2]", b'{"id": "x"}', b"\xff\xfe",
    b'{"id": "1", "type": "identity.x", "source": "identity", "category": "nope", "occurred_at": "t", "version": 1}',
    b'{"id": "1", "type": "identity.x", "source": "identity", "category": "users", "occurred_at": "t", '
    b'"version": 1, "data": {"password": "p"}}',
    b'{"id": "1", "type": "identity.x", "source": "identity", "category": "users", "occurred_at": "t", "version": 2}',
])
def test_decode_refuses_what_is_not_a_valid_event(body):
    with pytest.raises(Exception):
        decode(body, NOW)


def refusing(bad: set, transient_on: set = frozenset()):
    """An append that refuses any batch holding an item of `bad` (as a database would), and records what it stored."""
    stored, calls = [], []

    def append(items):
        calls.append(list(items))
        if transient_on & set(items):
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        if bad & set(items):
            raise IntegrityError("INSERT", {}, Exception("refused"))
        stored.extend(items)

    return append, stored, calls


def test_a_batch_without_poison_is_one_transaction():
    append, stored, calls = refusing(set())
    assert store_isolating(list(range(100)), append) == []
    assert stored == list(range(100)) and len(calls) == 1


def test_poison_is_isolated_and_everything_else_is_stored_in_order():
    append, stored, calls = refusing({13, 77})
    refused = store_isolating(list(range(100)), append)
    assert [item for item, _ in refused] == [13, 77]
    assert all(isinstance(error, IntegrityError) for _, error in refused)
    assert stored == [i for i in range(100) if i not in (13, 77)]
    assert len(calls) <= 2 * 2 * 8  # halving: about log2(n) transactions per poison


def test_a_transient_error_propagates_so_nothing_is_acked():
    append, stored, _ = refusing({5}, transient_on={50})
    with pytest.raises(OperationalError):
        store_isolating(list(range(100)), append)


def test_a_broken_store_is_retried_later_not_blamed_on_the_messages():
    def append(items):
        raise ProgrammingError("INSERT", {}, Exception("column hash does not exist"))

    with pytest.raises(ProgrammingError):
        store_isolating(list(range(10)), append)
    assert retry_later(OperationalError("x", {}, Exception("database is locked")))
    assert not retry_later(IntegrityError("x", {}, Exception("refused")))
    assert not retry_later(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))


# --- dead letters ------------------------------------------------------------------

def test_a_dead_letter_is_described_with_its_origin_and_secrets_masked():
    body = b'{"id": "e1", "type": "identity.x", "data": {"new_password": "hunter2", "list": [{"token": "t"}]}}'
    died = datetime(2026, 11, 23, 10, 0, 5, tzinfo=timezone.utc)
    properties = {"message_id": "m1", "application_headers": {"x-death": [
        {"count": 1, "reason": "rejected", "queue": "audit.record", "time": died, "exchange": "identity.events",
         "routing-keys": ["identity.x"]}]}}
    delivery = {"routing_key": "audit.record", "exchange": "gatehouse.dead-letters"}
    described = deadletters.describe(body, properties, delivery)
    assert described == {
        "message_id": "m1", "event_id": "e1", "event_type": "identity.x", "exchange": "identity.events",
        "routing_key": "identity.x", "queue": "audit.record", "reason": "rejected", "died_at": "2026-11-23T10:00:05Z",
        "deaths": 1, "size": len(body),
        "body_preview": '{"id": "e1", "type": "identity.x", "data": {"new_password": "[redacted]", '
                        '"list": [{"token": "[redacted]"}]}}',
    }
    assert "hunter2" not in str(described)


def test_an_undecodable_dead_letter_shows_the_start_of_its_body():
    body = b"{not json " + b"x" * 1000
    described = deadletters.describe(body, {}, {"routing_key": "identity.garbage", "exchange": "identity.events"})
    assert described["event_id"] is None and described["event_type"] is None
    assert described["routing_key"] == "identity.garbage" and described["reason"] is None
    assert described["body_preview"].startswith("{not json xxx") and len(described["body_preview"]) == 301
