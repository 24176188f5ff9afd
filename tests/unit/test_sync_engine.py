"""The sync engine's bookkeeping on a migrated database: work merges, survives failures with
backoff, is not lost when a new reason arrives mid-run, and one instance at a time holds a target."""
from __future__ import annotations

from datetime import timedelta

import pytest

from kernel.envelope import utc_now
from services.proxmox_sync import engine, storage
from services.proxmox_sync.engine import Engine, Outcome, TargetFailure
from tests.unit.conftest import migrated

TARGET = "pve:c1"


@pytest.fixture
def db(tmp_path):
    database = migrated("proxmox_sync", tmp_path / "proxmox_sync.db", storage.metadata)
    yield database
    database.dispose()


def work(db) -> dict:
    with db.unit_of_work() as uow:
        return {(w.target, w.subject): (w.generation, w.attempts, dict(w.hint))
                for w in uow.session.query(storage.SyncWork).all()}


def target(db, name=TARGET) -> storage.SyncTarget:
    with db.unit_of_work() as uow:
        row = uow.session.get(storage.SyncTarget, name)
        uow.session.expunge(row)
        return row


def outbox_types(db) -> list[str]:
    import json
    with db.unit_of_work() as uow:
        return [json.loads(body)["type"] for body in uow.session.execute(
            storage.metadata.tables["proxmox_sync_outbox"].select().with_only_columns(
                storage.metadata.tables["proxmox_sync_outbox"].c.body)).scalars()]


class Change:
    def __init__(self, n):
        self.n = n

    def describe(self):
        return {"op": "add", "kind": "user", "key": f"u{self.n}"}


def test_work_for_the_same_subject_merges_and_keeps_every_hint(db):
    sync = Engine(db, lambda: None)
    sync.enqueue([("ldap", None)], "user:1", {"uid_number": 10001, "usernames": ["old"]})
    sync.enqueue([("ldap", None)], "user:1", {"uid_number": 10001, "usernames": ["new"]})
    assert work(db) == {("ldap", "user:1"): (2, 0, {"uid_number": 10001, "usernames": ["new", "old"]})}


def test_a_successful_run_deletes_its_work_and_records_the_run(db, monkeypatch):
    sync = Engine(db, lambda: None)
    monkeypatch.setattr(sync, "_converge", lambda *args: Outcome([Change(1).describe(), Change(2).describe()]))
    sync.enqueue([(TARGET, "t1")])
    sync.process(TARGET, sources=None)
    assert work(db) == {}
    row = target(db)
    assert row.last_changes == 2 and row.changes_total == 2 and row.last_mode == "full"
    assert row.last_full_at is not None and row.lease_owner is None and row.running is None
    assert outbox_types(db) == ["proxmox_sync.target_synced"]


def test_a_failed_run_keeps_its_work_with_backoff_then_recovers(db, monkeypatch):
    sync = Engine(db, lambda: None)
    sync.enqueue([(TARGET, "t1")])

    def down(*args):
        raise TargetFailure("unreachable", "https://pve cannot be reached.")

    monkeypatch.setattr(sync, "_converge", down)
    sync.process(TARGET, sources=None)
    sync.process(TARGET, sources=None)  # not due yet: nothing happens
    assert work(db)[(TARGET, "full")][1] == 1
    row = target(db)
    assert row.failing_since is not None and row.last_error["code"] == "unreachable"
    with db.unit_of_work() as uow:  # time passes
        uow.session.get(storage.SyncWork, (TARGET, "full")).not_before = utc_now() - timedelta(seconds=1)
        uow.commit()
    monkeypatch.setattr(sync, "_converge", lambda *args: Outcome())
    sync.process(TARGET, sources=None)
    assert work(db) == {} and target(db).failing_since is None
    assert outbox_types(db) == ["proxmox_sync.target_failed", "proxmox_sync.target_recovered"]


def test_new_work_for_a_failing_target_waits_for_its_next_try(db, monkeypatch):
    sync = Engine(db, lambda: None)
    sync.enqueue([(TARGET, "t1")])
    monkeypatch.setattr(sync, "_converge", lambda *args: (_ for _ in ()).throw(TargetFailure("unreachable", "down")))
    sync.process(TARGET, sources=None)
    sync.enqueue([(TARGET, "t1")], "user:1")  # events while it is down do not make it due again
    sync.enqueue([(TARGET, "t1")])
    with db.unit_of_work() as uow:
        assert storage.due_targets(uow.session, utc_now()) == []
        storage.retry_now(uow.session, TARGET, utc_now())  # an explicit request does
        assert storage.due_targets(uow.session, utc_now()) == [TARGET]


def test_work_arriving_during_a_run_is_not_lost(db, monkeypatch):
    sync = Engine(db, lambda: None)
    sync.enqueue([(TARGET, "t1")])

    def meanwhile(*args):
        sync.enqueue([(TARGET, "t1")])  # an event during the run
        return Outcome()

    monkeypatch.setattr(sync, "_converge", meanwhile)
    sync.process(TARGET, sources=None)
    assert (TARGET, "full") in work(db)  # runs again


def test_one_instance_at_a_time_holds_a_target(db, monkeypatch):
    first, second = Engine(db, lambda: None, "one"), Engine(db, lambda: None, "two")
    first.enqueue([(TARGET, "t1")])
    ran = []

    def nested(*args):
        second.process(TARGET, sources=None)  # the other instance finds the lease taken
        first.process(TARGET, sources=None)  # and so does another worker of the same process
        ran.append("first")
        return Outcome()

    monkeypatch.setattr(first, "_converge", nested)
    monkeypatch.setattr(second, "_converge", lambda *args: ran.append("second") or Outcome())
    first.process(TARGET, sources=None)
    assert ran == ["first"]
    with db.unit_of_work() as uow:  # an instance that died holding it: the lease runs out
        assert storage.take_lease(uow.session, TARGET, "one", utc_now(), 30)
        assert not storage.take_lease(uow.session, TARGET, "two", utc_now(), 30)
        assert storage.take_lease(uow.session, TARGET, "two", utc_now() + timedelta(seconds=31), 30)


def test_backoff_doubles_up_to_a_minute():
    assert [engine.backoff(n) for n in (1, 2, 3, 6, 7, 20)] == [1, 2, 4, 32, 60, 60]


def test_a_tenants_view_of_the_directory_names_nobody():
    from services.proxmox_sync.views import without_names as _without_names

    item = {"target": "ldap", "conflicts": [{"dn": "uid=bob,ou=people,dc=x"}], "last_run": {
        "error": {"code": "ldap_error", "message": "add uid=bob,ou=people,dc=x refused"}, "changes": 0}}
    seen = _without_names(item)
    assert "bob" not in repr(seen) and seen["last_run"]["error"]["code"] == "ldap_error"
