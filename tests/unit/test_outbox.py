"""The transactional outbox: events commit with state and the relay publishes them once each."""
from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from kernel.db import kernel_tables
from kernel.envelope import Actor, Event, Resource, utc_now
from kernel.outbox import OutboxRelay


class FakePublisher:
    """Records what it was asked to publish; optionally fails on the n-th call (1-based)."""

    def __init__(self, fail_on: int | None = None):
        self.sent: list[tuple[str, str, str, str]] = []
        self.calls = 0
        self.fail_on = fail_on
        self.closed = 0

    def publish(self, exchange, routing_key, body, message_id):
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise ConnectionError("broker went away")
        self.sent.append((exchange, routing_key, body, message_id))

    def close(self):
        self.closed += 1


def event(n: int, source: str = "svc") -> Event:
    return Event(type=f"{source}.thing_happened", source=source, category="system",
                 actor=Actor(username="tester"), resource=Resource("thing", str(n)), data={"n": n})


def rows(db):
    with db.engine.connect() as conn:
        return conn.execute(sa.select(db.outbox).order_by(db.outbox.c.seq)).all()


def emit_committed(db, *events):
    with db.unit_of_work() as uow:
        uow.emit(*events)
        uow.commit()


def test_kernel_tables_are_named_after_the_service():
    metadata = sa.MetaData()
    outbox, inbox = kernel_tables(metadata, "billing")
    assert outbox.name == "billing_outbox" and inbox.name == "billing_inbox"
    assert set(metadata.tables) == {"billing_outbox", "billing_inbox"}


def test_emit_and_commit_writes_outbox_rows_and_wakes_the_relay(db):
    first, second = event(1), event(2)
    assert not db.committed.is_set()
    with db.unit_of_work() as uow:
        uow.emit(first)
        uow.emit(second)
        assert not db.committed.is_set()  # not before the commit
        uow.commit()
        assert uow.events == []
    assert db.committed.is_set()
    stored = rows(db)
    assert [r.event_id for r in stored] == [first.id, second.id]
    for row, ev in zip(stored, (first, second)):
        assert row.exchange == "svc.events"
        assert row.routing_key == "svc.thing_happened"
        assert row.published_at is None
        assert row.created_at is not None
        assert Event.from_dict(json.loads(row.body)) == ev


def test_commit_without_events_does_not_wake_the_relay(db):
    with db.unit_of_work() as uow:
        uow.commit()
    assert not db.committed.is_set()
    assert rows(db) == []


def test_uncommitted_unit_of_work_leaves_no_rows_and_no_state(db):
    with db.unit_of_work() as uow:
        uow.emit(event(1), event(2))
    assert rows(db) == []
    assert not db.committed.is_set()
    assert db.outbox_backlog() == 0


def test_unit_of_work_rolled_back_by_an_exception_leaves_no_rows(db):
    with pytest.raises(RuntimeError):
        with db.unit_of_work() as uow:
            uow.emit(event(1))
            raise RuntimeError("handler failed")
    assert rows(db) == []
    assert not db.committed.is_set()


def test_relay_publishes_in_commit_order_and_marks_published(db):
    events = [event(n) for n in range(5)]
    emit_committed(db, events[0], events[1])
    emit_committed(db, events[2])
    emit_committed(db, events[3], events[4])
    publisher = FakePublisher()
    relay = OutboxRelay(db, publisher)

    assert relay.relay_once() == 5
    assert [m[3] for m in publisher.sent] == [e.id for e in events]
    for (exchange, routing_key, body, message_id), ev in zip(publisher.sent, events):
        assert exchange == "svc.events"
        assert routing_key == ev.type
        assert json.loads(body)["id"] == message_id == ev.id
    assert all(r.published_at is not None for r in rows(db))
    assert db.outbox_backlog() == 0

    assert relay.relay_once() == 0
    assert len(publisher.sent) == 5


def test_relay_respects_batch_size(db):
    events = [event(n) for n in range(5)]
    emit_committed(db, *events)
    publisher = FakePublisher()
    relay = OutboxRelay(db, publisher, batch_size=2)
    assert [relay.relay_once() for _ in range(4)] == [2, 2, 1, 0]
    assert [m[3] for m in publisher.sent] == [e.id for e in events]


def test_failed_publish_keeps_confirmed_ones_marked_and_the_rest_pending(db):
    events = [event(n) for n in range(5)]
    emit_committed(db, *events)
    failing = FakePublisher(fail_on=3)
    relay = OutboxRelay(db, failing)
    with pytest.raises(ConnectionError):
        relay.relay_once()
    assert [m[3] for m in failing.sent] == [e.id for e in events[:2]]

    published = {r.event_id: r.published_at for r in rows(db)}
    assert published[events[0].id] is not None
    assert published[events[1].id] is not None
    assert [published[e.id] for e in events[2:]] == [None, None, None]
    assert db.outbox_backlog() == 3

    working = FakePublisher()
    assert OutboxRelay(db, working).relay_once() == 3
    assert [m[3] for m in working.sent] == [e.id for e in events[2:]]  # no duplicates
    assert db.outbox_backlog() == 0


def test_failure_on_the_first_publish_marks_nothing(db):
    events = [event(n) for n in range(3)]
    emit_committed(db, *events)
    with pytest.raises(ConnectionError):
        OutboxRelay(db, FakePublisher(fail_on=1)).relay_once()
    assert db.outbox_backlog() == 3
    working = FakePublisher()
    assert OutboxRelay(db, working).relay_once() == 3
    assert [m[3] for m in working.sent] == [e.id for e in events]


def test_outbox_backlog_counts_pending_rows(db):
    assert db.outbox_backlog() == 0
    emit_committed(db, event(1), event(2), event(3))
    assert db.outbox_backlog() == 3
    OutboxRelay(db, FakePublisher(), batch_size=2).relay_once()
    assert db.outbox_backlog() == 1
    emit_committed(db, event(4))
    assert db.outbox_backlog() == 2


def test_cleanup_deletes_only_published_rows_older_than_a_day(db):
    old_published, recent_published, old_pending, new_pending = (event(n) for n in range(4))
    emit_committed(db, old_published, recent_published, old_pending)
    assert OutboxRelay(db, FakePublisher()).relay_once() == 3
    emit_committed(db, new_pending)
    outbox = db.outbox
    with db.engine.begin() as conn:
        conn.execute(sa.update(outbox).where(outbox.c.event_id == old_published.id)
                     .values(published_at=utc_now() - timedelta(days=2)))
        conn.execute(sa.update(outbox).where(outbox.c.event_id == recent_published.id)
                     .values(published_at=utc_now() - timedelta(hours=23)))
        # published long ago but reset to pending: must never be deleted
        conn.execute(sa.update(outbox).where(outbox.c.event_id == old_pending.id)
                     .values(published_at=None, created_at=utc_now() - timedelta(days=3)))

    assert OutboxRelay(db, FakePublisher()).cleanup() == 1
    remaining = {r.event_id for r in rows(db)}
    assert remaining == {recent_published.id, old_pending.id, new_pending.id}
    assert db.outbox_backlog() == 2
    assert OutboxRelay(db, FakePublisher()).cleanup() == 0


def test_stop_flushes_pending_events_and_closes_the_publisher(db):
    emit_committed(db, event(1))
    publisher = FakePublisher()
    relay = OutboxRelay(db, publisher)
    relay.stop()
    assert len(publisher.sent) == 1
    assert publisher.closed == 1
    assert db.outbox_backlog() == 0


class SlowPublisher(FakePublisher):
    def publish(self, *args):
        time.sleep(0.001)
        super().publish(*args)


def test_stop_while_the_relay_is_busy_sends_everything_exactly_once(db):
    """SIGTERM in the middle of a batch: the running loop does the last pass, not a second relay."""
    events = [event(n) for n in range(300)]
    emit_committed(db, *events)
    publisher = SlowPublisher()
    relay = OutboxRelay(db, publisher, poll_interval=0.05, batch_size=100)
    runner = threading.Thread(target=relay.run)
    runner.start()
    while not publisher.sent:  # mid-batch
        time.sleep(0.001)
    relay.stop(timeout=30)
    runner.join(30)
    ids = [m[3] for m in publisher.sent]
    assert sorted(ids) == sorted(e.id for e in events)
    assert len(ids) == len(set(ids))
    assert db.outbox_backlog() == 0
