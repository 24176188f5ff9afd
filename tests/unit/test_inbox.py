"""The inbox: a consumer handles each event id once, and only committed claims count."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa



def claim(db, event_id, consumer, commit=True) -> bool:
    with db.unit_of_work() as uow:
        claimed = uow.claim(event_id, consumer)
        if commit:
            uow.commit()
        return claimed


def inbox_rows(db):
    with db.engine.connect() as conn:
        return {(r.consumer, r.event_id) for r in conn.execute(sa.select(db.inbox)).all()}


def test_first_claim_wins_and_a_redelivery_is_refused(db):
    event_id = str(uuid.uuid4())
    assert claim(db, event_id, "grant_first_admin") is True
    assert claim(db, event_id, "grant_first_admin") is False
    assert claim(db, event_id, "grant_first_admin") is False
    assert inbox_rows(db) == {("grant_first_admin", event_id)}


def test_same_unit_of_work_refuses_a_second_claim(db):
    event_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        assert uow.claim(event_id, "c") is True
        assert uow.claim(event_id, "c") is False
        uow.commit()
    assert inbox_rows(db) == {("c", event_id)}


def test_different_consumers_may_claim_the_same_event(db):
    event_id = str(uuid.uuid4())
    assert claim(db, event_id, "first") is True
    assert claim(db, event_id, "second") is True
    assert claim(db, event_id, "first") is False
    assert claim(db, event_id, "second") is False
    assert inbox_rows(db) == {("first", event_id), ("second", event_id)}


def test_different_events_are_claimed_independently(db):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert claim(db, a, "c") is True
    assert claim(db, b, "c") is True


def test_uncommitted_claim_does_not_count(db):
    event_id = str(uuid.uuid4())
    assert claim(db, event_id, "c", commit=False) is True
    assert inbox_rows(db) == set()
    assert claim(db, event_id, "c") is True
    assert claim(db, event_id, "c") is False


def test_claim_rolled_back_by_a_failing_handler_does_not_count(db):
    event_id = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        with db.unit_of_work() as uow:
            assert uow.claim(event_id, "c") is True
            raise RuntimeError("handler failed")
    assert claim(db, event_id, "c") is True
