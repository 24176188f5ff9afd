"""Reading the audit trail (services/audit/queries.py) on a migrated SQLite store, no broker."""
import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from kernel import EVERY_TENANT, migrate
from kernel.db import ServiceDatabase
from kernel.envelope import Actor, Event, Resource
from kernel.errors import Forbidden, ValidationFailed
from kernel.paging import encode_cursor
from services.audit import queries, storage

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def event(n: int, *, username="alice", action="login_succeeded", category="auth", outcome="success",
          tenants=("default",), resource=None, display_name="Alice Liddell", email="alice@example.org"):
    source = "identity"
    return Event(type=f"{source}.{action}", source=source, category=category, outcome=outcome,
                 actor=Actor(user_id=f"id-{username}", username=username, display_name=display_name, email=email),
                 resource=resource or Resource("user", f"id-{username}", username), tenant_ids=tenants,
                 data={"n": n})


def append(db, events, start=T0):
    with db.engine.begin() as conn:
        storage.append(conn, [storage.record_from_event(e, start + timedelta(minutes=i)) for i, e in enumerate(events)])


def index_all(db):
    with db.engine.begin() as conn:
        while queries.index_search(conn):
            pass


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate.upgrade("audit", url)
    database = ServiceDatabase("audit", url, storage.metadata)
    yield database
    database.dispose()


def page(db, scope=EVERY_TENANT, cursor=None, limit=50, **filters):
    with db.unit_of_work() as uow:
        return queries.read_page(uow.session, queries.criteria(scope, filters), cursor, limit)


def seqs(answer):
    return [item["seq"] for item in answer["items"]]


# --- validation ----------------------------------------------------------------------

@pytest.mark.parametrize("filters, field", [
    ({"colour": "red"}, "colour"),
    ({"outcome": "maybe"}, "outcome"),
    ({"category": ""}, "category"),
    ({"action": "x" * 129}, "action"),
    ({"actor_id": 42}, "actor_id"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-01T00:00:00Z"}, "until"),
    ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "until"),
    ({"q": "   "}, "q"),
    ({"q": "x" * 129}, "q"),
    ({"tenant": ""}, "tenant"),
])
def test_bad_filters_are_refused_naming_the_filter(filters, field):
    with pytest.raises(ValidationFailed) as refused:
        queries.criteria(EVERY_TENANT, filters)
    assert field in refused.value.details


def test_a_tenant_reader_may_not_choose_a_tenant():
    with pytest.raises(Forbidden) as refused:
        queries.criteria("default", {"tenant": "default"})
    assert "tenant" in refused.value.details


@pytest.mark.parametrize("scope", [None, "", 7])
def test_a_read_without_a_scope_is_refused(scope):
    with pytest.raises(ValidationFailed):
        queries.criteria(scope, {})


def test_criteria_scope_and_normalization():
    assert queries.criteria("t1", {}).tenant == "t1"
    assert queries.criteria(EVERY_TENANT, {}).tenant is None
    assert queries.criteria(EVERY_TENANT, {"tenant": "t2"}).tenant == "t2"
    parsed = queries.criteria(EVERY_TENANT, {"since": "2026-03-01T12:00:00", "until": "2026-03-01T14:00:00+01:00",
                                             "q": "  ALICE ", "outcome": None})
    assert parsed.since == T0 and parsed.until == T0 + timedelta(hours=1)  # no offset: UTC
    assert parsed.text == "alice" and parsed.exact == ()


# --- paging ----------------------------------------------------------------------------

def test_newest_first_and_pages_stay_stable_while_records_arrive(db):
    append(db, [event(i) for i in range(5)])
    first = page(db, limit=2)
    assert seqs(first) == [5, 4] and first["next_cursor"]
    append(db, [event(i) for i in range(5, 8)], start=T0 + timedelta(hours=1))  # new records on top
    second = page(db, limit=2, cursor=first["next_cursor"])
    third = page(db, limit=2, cursor=second["next_cursor"])
    assert seqs(second) == [3, 2] and seqs(third) == [1] and third["next_cursor"] is None
    assert seqs(page(db, limit=3)) == [8, 7, 6]


def test_a_cursor_of_another_list_is_refused(db):
    with pytest.raises(ValidationFailed) as refused:
        page(db, cursor=encode_cursor(10))
    assert "cursor" in refused.value.details


def test_a_full_last_page_has_no_next_cursor(db):
    append(db, [event(i) for i in range(4)])
    assert page(db, limit=4)["next_cursor"] is None


# --- filters and scope ----------------------------------------------------------------

def test_tenant_scope_sees_only_its_tenant_and_super_admins_see_all(db):
    append(db, [event(0, tenants=("a",)), event(1, tenants=("a", "b")), event(2, tenants=()), event(3, tenants=("b",))])
    assert seqs(page(db, "a")) == [2, 1]
    assert seqs(page(db, "b")) == [4, 2]
    assert seqs(page(db, "c")) == []
    assert seqs(page(db)) == [4, 3, 2, 1]  # with the record of no tenant
    assert seqs(page(db, tenant="b")) == [4, 2]


def test_each_filter_narrows(db):
    append(db, [
        event(0, username="alice", action="login_failed", outcome="failure"),
        event(1, username="bob", action="user_updated", category="users"),
        event(2, username="alice", action="role_assigned", category="rbac", resource=Resource("role", "r1", "admins")),
    ])
    assert seqs(page(db, outcome="failure")) == [1]
    assert seqs(page(db, category="users")) == [2]
    assert seqs(page(db, action="role_assigned")) == [3]
    assert seqs(page(db, actor_id="id-alice")) == [3, 1]
    assert seqs(page(db, actor="bob")) == [2]
    assert seqs(page(db, resource_type="role", resource_id="r1")) == [3]
    assert seqs(page(db, resource_id="id-bob")) == [2]
    assert seqs(page(db, actor="alice", category="auth")) == [1]


def test_time_filters_are_on_recorded_at_since_inclusive_until_exclusive(db):
    append(db, [event(i) for i in range(4)])  # recorded T0, T0+1min, ...
    window = {"since": (T0 + timedelta(minutes=1)).isoformat(), "until": (T0 + timedelta(minutes=3)).isoformat()}
    assert seqs(page(db, **window)) == [3, 2]


# --- free text -------------------------------------------------------------------------

def test_free_text_is_a_case_insensitive_substring_of_actor_resource_and_action(db):
    append(db, [
        event(0, username="alice", display_name="Alice Liddell", email="alice@wonder.land"),
        event(1, username="bob", display_name="Robert Paulson", email="bob@example.org",
              resource=Resource("vm", "100", "Web-Server 01")),
        event(2, username="carol", action="password_changed", display_name="Carol", email="c@example.org"),
    ])
    index_all(db)
    assert seqs(page(db, q="LIDDELL")) == [1]
    assert seqs(page(db, q="wonder.la")) == [1]
    assert seqs(page(db, q="server 0")) == [2]
    assert seqs(page(db, q="word_chan")) == [3]
    assert seqs(page(db, q="example.org")) == [3, 2]
    assert seqs(page(db, q="ob")) == [2]  # shorter than a trigram: scanned
    assert seqs(page(db, q="zebra")) == []


def test_free_text_is_exact_for_records_not_indexed_yet(db):
    append(db, [event(i, username=f"user{i}") for i in range(6)])
    index_all(db)
    append(db, [event(i, username=f"user{i}") for i in range(6, 12)], start=T0 + timedelta(hours=1))
    with db.unit_of_work() as uow:
        assert queries.indexed_up_to(uow.session) == 6
    assert seqs(page(db, q="user1")) == [12, 11, 2]  # user11, user10 (not indexed), user1 (indexed)
    assert seqs(page(db, q="user", limit=4)) == [12, 11, 10, 9]
    across = page(db, q="user", limit=8)
    assert seqs(across) == [12, 11, 10, 9, 8, 7, 6, 5]
    assert seqs(page(db, q="user", cursor=across["next_cursor"])) == [4, 3, 2, 1]
    index_all(db)
    assert seqs(page(db, q="user1")) == [12, 11, 2]


def test_free_text_takes_wildcards_and_quotes_literally(db):
    append(db, [event(0, resource=Resource("vm", "1", 'a "quoted" name')),
                event(1, resource=Resource("vm", "2", "100% done_now")),
                event(2, resource=Resource("vm", "3", "1000 doneXnow"))])
    index_all(db)
    assert seqs(page(db, q='"quoted"')) == [1]
    assert seqs(page(db, q="100%")) == [2]
    assert seqs(page(db, q="done_now")) == [2]
    assert seqs(page(db, q="%")) == [2]


def test_free_text_combines_with_filters_and_scope(db):
    append(db, [event(0, username="dave", tenants=("a",)), event(1, username="dave", tenants=("b",)),
                event(2, username="dave", tenants=("a",), outcome="failure", action="login_failed")])
    index_all(db)
    assert seqs(page(db, "a", q="dave")) == [3, 1]
    assert seqs(page(db, "a", q="dave", outcome="failure")) == [3]


def test_the_search_index_follows_deletes_and_edits(db):
    append(db, [event(i, username=f"erin{i}") for i in range(3)])
    index_all(db)
    with db.engine.begin() as conn:
        conn.execute(sa.delete(storage.AuditRecordTenant).where(storage.AuditRecordTenant.seq == 1))
        conn.execute(sa.delete(storage.AuditRecord).where(storage.AuditRecord.seq == 1))  # as retention does
        conn.execute(sa.update(storage.AuditRecord).where(storage.AuditRecord.seq == 2)
                     .values(search_text="mallory"))  # as a tamperer would
        matches = lambda text: conn.exec_driver_sql(  # noqa: E731
            "SELECT rowid FROM audit_search WHERE audit_search MATCH ?", (f'"{text}"',)).scalars().all()
        assert matches("erin0") == [] and matches("erin1") == [] and matches("mallory") == [2]
        assert conn.exec_driver_sql("INSERT INTO audit_search(audit_search) VALUES ('integrity-check')") is not None
    assert seqs(page(db, q="erin")) == [3]


def test_indexing_is_incremental_and_idempotent(db):
    append(db, [event(i) for i in range(5)])
    with db.engine.begin() as conn:
        assert queries.index_search(conn, batch=2) == 2
        assert queries.index_search(conn, batch=10) == 3
        assert queries.index_search(conn) == 0


def test_public_record_shape(db):
    append(db, [event(0, tenants=("a", "b"))])
    [item] = page(db)["items"]
    assert set(item) == {"id", "seq", "type", "source", "category", "action", "outcome", "occurred_at", "recorded_at",
                         "actor", "request_id", "tenant_ids", "resource", "data"}
    assert item["recorded_at"] == "2026-03-01T12:00:00.000000Z" and item["tenant_ids"] == ["a", "b"]
    assert item["actor"] == {"user_id": "id-alice", "username": "alice", "display_name": "Alice Liddell",
                             "email": "alice@example.org", "ip": None}


def test_page_size_is_bounded(db):
    append(db, [event(i) for i in range(3)])
    with db.unit_of_work() as uow:
        assert len(queries.read_page(uow.session, queries.criteria(EVERY_TENANT), None, 0)["items"]) == 1
        assert queries.read_page(uow.session, queries.criteria(EVERY_TENANT), None, 10**6)["next_cursor"] is None


def test_the_indexer_gives_way_to_recording_and_catches_up_when_it_pauses(db):
    indexer = queries.SearchIndexer()
    indexer.setup()
    indexer.TAIL, indexer.batch = 10, 5

    def behind():
        with db.unit_of_work() as uow:
            return uow.session.scalar(sa.select(sa.func.max(storage.AuditRecord.seq))) - queries.indexed_up_to(uow.session)

    append(db, [event(i) for i in range(30)])
    assert indexer.run_once(db) == 25 and behind() == 5  # records arriving, tail over TAIL: down to TAIL / 2
    append(db, [event(i) for i in range(30, 33)])
    assert indexer.run_once(db) == 0 and behind() == 8  # still arriving, tail within TAIL: recording goes first
    assert indexer.run_once(db) == 8 and behind() == 0  # a pause: everything
    assert seqs(page(db, q="alice", limit=3)) == [33, 32, 31]


def tenant_page(db, scope):
    with db.unit_of_work() as uow:
        return queries.read_page(uow.session, queries.criteria(scope), None, 50, shown_tenant=scope)


def test_a_tenants_view_names_no_other_tenant_and_no_sync_sample(db):
    t1, t2 = "11111111-aaaa-4aaa-8aaa-111111111111", "22222222-bbbb-4bbb-8bbb-222222222222"
    switched = Event(type="identity.tenant_switched", source="identity", category="auth",
                     actor=Actor(user_id="u", username="u"), resource=Resource("user", "u", "u"),
                     tenant_ids=(t1, t2), data={"from": t1, "to": t2, "note": f"to {t2}", t2: [t2]})
    synced = Event(type="proxmox_sync.target_synced", source="proxmox_sync", category="sync",
                   actor=Actor(username="system"), resource=Resource("sync_target", "pve:c1", "pve:c1"),
                   tenant_ids=(t1,), data={"mode": "full", "changes": 2, "counts": {"create_group": 2},
                                           "sample": [{"op": "create", "kind": "group", "key": "t2-secret-group",
                                                       "fields": {"comment": "T2's plans"}}],
                                           "conflicts": [{"op": "conflict", "kind": "user", "key": "x@gatehouse"}]})
    append(db, [switched, synced])
    seen = tenant_page(db, t1)["items"]
    assert {item["type"] for item in seen} == {"identity.tenant_switched", "proxmox_sync.target_synced"}
    assert t2 not in json.dumps(seen) and "t2-secret-group" not in json.dumps(seen) and "T2's plans" not in json.dumps(seen)
    by_type = {item["type"]: item for item in seen}
    assert by_type["identity.tenant_switched"]["data"] == {
        "from": t1, "to": queries.ANOTHER_TENANT, "note": f"to {queries.ANOTHER_TENANT}",
        queries.ANOTHER_TENANT: [queries.ANOTHER_TENANT]}
    assert by_type["proxmox_sync.target_synced"]["data"]["sample"] == [{"op": "create", "kind": "group"}]
    assert by_type["proxmox_sync.target_synced"]["data"]["counts"] == {"create_group": 2}
    everything = json.dumps(page(db)["items"])  # super admins: as stored
    assert t2 in everything and "t2-secret-group" in everything


def test_a_tenants_view_of_parked_subjects_keeps_the_error_code_but_no_name(db):
    t1 = "11111111-aaaa-4aaa-8aaa-111111111111"
    common = dict(source="proxmox_sync", category="sync", actor=Actor(username="system"),
                  resource=Resource("sync_target", "pve:c1", "pve:c1"), tenant_ids=(t1,))
    parked = Event(type="proxmox_sync.subject_parked", outcome="failure", **common,
                   data={"subject": "user:root-admin-id", "label": "rootadmin@gh", "error": "proxmox_refused",
                         "error_message": "user update rootadmin@gh: Proxmox VE answered HTTP 400"})
    unparked = Event(type="proxmox_sync.subject_unparked", **common,
                     data={"subject": "user:root-admin-id", "label": "rootadmin@gh", "parked_seconds": 12.5})
    append(db, [parked, unparked])
    seen = {item["type"]: item["data"] for item in tenant_page(db, t1)["items"]}
    assert seen == {"proxmox_sync.subject_parked": {"error": "proxmox_refused"},
                    "proxmox_sync.subject_unparked": {"parked_seconds": 12.5}}
    everything = json.dumps(page(db)["items"])  # super admins: as stored
    assert "rootadmin@gh" in everything and "user:root-admin-id" in everything
