"""Reading the audit trail through the gateway: filters, search, tenant scoping, keyset paging,
export, and forwarding to a real syslog collector.

Events with chosen tenants are published straight to a service's exchange, as the
services would (tenancy is not built yet): audit records them like any other.
"""
import csv
import io
import json
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer

from kernel import migrate
from kernel.db import ServiceDatabase
from kernel.envelope import Actor, Event, Resource
from kernel.paging import encode_cursor
from ops.postgres import LocalPostgres
from services.audit import storage
from tests.harness import eventually, free_port
from tests.syslog_receiver import SyslogReceiver, parse
from tests.unit import test_audit_queries as unit
from tests.unit.test_audit_queries import append

TRICKY = 'Acme, "Ltd"\nsecond line'


def publish(platform, *events: Event) -> list[Event]:
    with Connection(platform.env["GATEHOUSE_AMQP_URI"]) as conn:
        producer = Producer(conn.channel())
        for event in events:
            producer.publish(json.dumps(event.to_dict()), exchange=Exchange(event.exchange, "topic", durable=True),
                             routing_key=event.type, content_type="application/json", content_encoding="utf-8",
                             delivery_mode=2)
    return list(events)


def event(tag: str, n: int = 0, *, tenants=("default",), action="vm_started", category="sync", outcome="success",
          username=None, resource_name=None) -> Event:
    """A proxmox_sync event about resource type `tag` (unique per test, so filters find only ours)."""
    return Event(type=f"proxmox_sync.{action}", source="proxmox_sync", category=category, outcome=outcome,
                 actor=Actor(user_id=f"u-{tag}", username=username or f"actor{tag}", display_name="Ada Lovelace",
                             email=f"ada{tag}@example.org"),
                 resource=Resource(tag, f"{tag}-{n}", resource_name or f"vm {tag} {n}"), tenant_ids=tenants,
                 data={"n": n})


def audit_page(api, **params):
    response = api.get("/api/v1/audit/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def recorded(api, count, timeout=20, **params):
    """Waits until the (first page of the) filtered trail holds `count` records; returns them."""
    def found():
        items = audit_page(api, limit=200, **params)["items"]
        return items if len(items) >= count else None
    return eventually(found, timeout, 0.2, f"{count} audit records for {params}")


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def tenant_admin(platform):
    """An admin of the default tenant: `admin.audit`, not a super admin."""
    import uuid
    return platform.create_user(f"ta{uuid.uuid4().hex[:8]}", role="admin")[1]


# --- list: filters, search, paging -----------------------------------------------------------

def test_filters_narrow_and_keyset_pages_stay_stable_while_events_arrive(platform, admin, unique):
    tag = f"r{unique}"
    publish(platform, *(event(tag, n) for n in range(5)))
    publish(platform, event(tag, 5, action="vm_failed", outcome="failure", username=f"bob{unique}"))
    everything = recorded(admin, 6, resource_type=tag)
    assert [e["resource"]["id"] for e in everything] == [f"{tag}-{n}" for n in range(5, -1, -1)]  # newest first

    first = audit_page(admin, resource_type=tag, limit=4)
    assert len(first["items"]) == 4 and first["next_cursor"] and "total" not in first
    publish(platform, *(event(tag, n) for n in range(6, 9)))  # arrive between the pages
    recorded(admin, 9, resource_type=tag)
    second = audit_page(admin, resource_type=tag, limit=4, cursor=first["next_cursor"])
    assert [e["seq"] for e in first["items"] + second["items"]] == [e["seq"] for e in everything]
    assert second["next_cursor"] is None

    assert [e["resource"]["id"] for e in audit_page(admin, resource_type=tag, outcome="failure")["items"]] == [f"{tag}-5"]
    assert len(audit_page(admin, resource_type=tag, action="vm_started")["items"]) == 8
    assert len(audit_page(admin, category="sync", actor_id=f"u-{tag}", limit=200)["items"]) == 9
    assert len(audit_page(admin, actor=f"bob{unique}")["items"]) == 1
    assert [e["seq"] for e in audit_page(admin, resource_id=f"{tag}-3")["items"]] == [everything[2]["seq"]]
    assert len(audit_page(admin, resource_type=tag, category="auth")["items"]) == 0


def test_free_text_search_is_a_case_insensitive_substring(platform, admin, unique):
    tag = f"q{unique}"
    publish(platform, event(tag, 0, resource_name=f"Web-Server-{unique.upper()}"),
            event(tag, 1, username=f"grace{unique}"))
    recorded(admin, 2, resource_type=tag)
    assert [e["resource"]["id"] for e in audit_page(admin, q=f"server-{unique}")["items"]] == [f"{tag}-0"]
    assert [e["resource"]["id"] for e in audit_page(admin, q=f"GRACE{unique}")["items"]] == [f"{tag}-1"]
    assert len(audit_page(admin, q=f"ada{tag}@example")["items"]) == 2  # the actor's email
    assert audit_page(admin, q=f"nothing-{unique}")["items"] == []


def test_time_window_on_recorded_at(platform, admin, unique):
    tag = f"t{unique}"
    publish(platform, event(tag, 0))
    [record] = recorded(admin, 1, resource_type=tag)
    at = datetime.fromisoformat(record["recorded_at"].replace("Z", "+00:00"))
    around = {"since": (at - timedelta(seconds=1)).isoformat(), "until": (at + timedelta(seconds=1)).isoformat()}
    assert len(audit_page(admin, resource_type=tag, **around)["items"]) == 1
    later = (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")  # no offset: UTC
    assert audit_page(admin, resource_type=tag, since=later)["items"] == []


@pytest.mark.parametrize("params, field", [
    ({"since": "yesterday"}, "since"),
    ({"outcome": "maybe"}, "outcome"),
    ({"category": "nonsense"}, "category"),
    ({"limit": 201}, "limit"),
    ({"q": "x" * 129}, "q"),
    ({"colour": "red"}, "colour"),
])
def test_bad_filters_are_422_naming_the_field(admin, params, field):
    error = error_of(admin.get("/api/v1/audit/events", params=params), 422)
    assert field in json.dumps(error["details"])


def test_since_after_until_and_foreign_cursors_are_422(admin):
    error = error_of(admin.get("/api/v1/audit/events", params={"since": "2026-02-01T00:00:00Z",
                                                               "until": "2026-01-01T00:00:00Z"}), 422)
    assert "until" in error["details"]
    for cursor in (encode_cursor(1), "not-a-cursor"):  # an offset cursor, as other lists answer, is foreign here
        assert "cursor" in error_of(admin.get("/api/v1/audit/events", params={"cursor": cursor}), 422)["details"]


# --- tenant scoping ----------------------------------------------------------------------------

def test_tenant_admins_see_their_tenant_and_super_admins_see_all(platform, admin, tenant_admin, unique):
    tag, other = f"s{unique}", f"t-other-{unique}"
    publish(platform, event(tag, 0, tenants=("default",)), event(tag, 1, tenants=(other,)),
            event(tag, 2, tenants=(other, "default")), event(tag, 3, tenants=()))
    everything = recorded(admin, 4, resource_type=tag)
    assert {e["resource"]["id"] for e in everything} == {f"{tag}-{n}" for n in range(4)}

    seen = audit_page(tenant_admin, resource_type=tag, limit=200)["items"]
    assert sorted(e["resource"]["id"] for e in seen) == [f"{tag}-0", f"{tag}-2"]
    assert all("default" in e["tenant_ids"] for e in seen)
    assert audit_page(tenant_admin, q=tag)["items"] and not [
        e for e in audit_page(tenant_admin, q=tag, limit=200)["items"] if "default" not in e["tenant_ids"]]

    only_other = audit_page(admin, resource_type=tag, tenant=other)["items"]
    assert sorted(e["resource"]["id"] for e in only_other) == [f"{tag}-1", f"{tag}-2"]

    error = error_of(tenant_admin.get("/api/v1/audit/events", params={"tenant": other}), 403)
    assert error["code"] == "permission_denied" and "tenant" in error["details"]
    error = error_of(tenant_admin.get("/api/v1/audit/export", params={"format": "jsonl", "tenant": "default"}), 403)
    assert "tenant" in error["details"]


def test_reading_the_trail_needs_admin_audit(platform, unique):
    _, viewer = platform.create_user(f"av{unique}", role="viewer")
    assert error_of(viewer.get("/api/v1/audit/events"), 403)["details"]["permission"] == "admin.audit"
    assert error_of(viewer.get("/api/v1/audit/export", params={"format": "csv"}), 403)["code"] == "permission_denied"
    assert platform.api().get("/api/v1/audit/export", params={"format": "csv"}).status_code == 401


# --- export ------------------------------------------------------------------------------------

def test_export_csv_and_jsonl_stream_every_page_with_correct_quoting(platform, admin, unique):
    tag = f"x{unique}"
    count = 1205  # more than one export page of 1,000
    publish(platform, event(tag, 0, resource_name=TRICKY), event(tag, 1, username=f"=HYPERLINK(1){unique}"),
            *(event(tag, n) for n in range(2, count)))
    eventually(lambda: len(audit_page(admin, resource_type=tag, limit=200, cursor=None)["items"]) == 200, 30)

    def exported(fmt):
        response = admin.get("/api/v1/audit/export", params={"format": fmt, "resource_type": tag}, stream=True)
        assert response.status_code == 200, response.text
        return response

    def exported_count():
        return sum(1 for line in exported("jsonl").iter_lines() if line)
    eventually(lambda: exported_count() == count, 60, 1.0, f"{count} records exported")

    jsonl = exported("jsonl")
    assert jsonl.headers["Content-Type"] == "application/x-ndjson"
    assert jsonl.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    records = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["resource"]["id"] for r in records] == [f"{tag}-{n}" for n in range(count - 1, -1, -1)]
    assert records[0] == audit_page(admin, resource_type=tag, limit=1)["items"][0]  # as the list shows it

    response = exported("csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == count
    assert list(rows[0]) == ["seq", "id", "recorded_at", "occurred_at", "type", "source", "category", "action",
                             "outcome", "actor_user_id", "actor_username", "actor_display_name", "actor_email",
                             "actor_ip", "request_id", "tenant_ids", "resource_type", "resource_id",
                             "resource_name", "data"]
    by_id = {row["resource_id"]: row for row in rows}
    assert by_id[f"{tag}-0"]["resource_name"] == TRICKY  # commas, quotes and a newline survive
    assert by_id[f"{tag}-1"]["actor_username"] == f"'=HYPERLINK(1){unique}"  # not a formula
    assert json.loads(by_id[f"{tag}-7"]["data"]) == {"n": 7}
    assert by_id[f"{tag}-7"]["tenant_ids"] == "default" and by_id[f"{tag}-7"]["seq"] == str(
        next(r["seq"] for r in records if r["resource"]["id"] == f"{tag}-7"))


def test_export_applies_the_tenant_scope_and_refuses_bad_filters(platform, tenant_admin, admin, unique):
    tag = f"e{unique}"
    publish(platform, event(tag, 0), event(tag, 1, tenants=(f"t-x{unique}",)))
    recorded(admin, 2, resource_type=tag)
    lines = tenant_admin.get("/api/v1/audit/export", params={"format": "jsonl", "resource_type": tag}).text
    assert [json.loads(line)["resource"]["id"] for line in lines.splitlines()] == [f"{tag}-0"]
    assert "format" in json.dumps(error_of(admin.get("/api/v1/audit/export", params={"format": "xml"}), 422))
    assert "since" in json.dumps(error_of(admin.get("/api/v1/audit/export",
                                                    params={"format": "csv", "since": "soon"}), 422))


def test_openapi_documents_reading_and_forwarding(platform):
    spec = platform.api().get("/api/v1/openapi.json").json()
    export = spec["paths"]["/api/v1/audit/export"]["get"]
    assert {"text/csv", "application/x-ndjson"} <= set(export["responses"]["200"]["content"])
    assert {"format", "q", "tenant", "since", "until"} <= {p["name"] for p in export["parameters"]}
    assert {"get", "put"} <= set(spec["paths"]["/api/v1/settings/audit-forwarding"])


# --- forwarding to a SIEM ---------------------------------------------------------------------

def configure(admin, receiver, **extra):
    response = admin.put("/api/v1/settings/audit-forwarding", json={
        "enabled": True, "host": "127.0.0.1", "port": receiver.port, "protocol": receiver.protocol, **extra})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def switched_off_after(admin):
    yield
    assert admin.put("/api/v1/settings/audit-forwarding", json={"enabled": False}).status_code == 200


def forwarded(receiver, tag):
    return [r for r in receiver.records() if r["resource"]["type"] == tag]


def test_forwarding_settings_are_for_super_admins_and_audited(platform, admin, tenant_admin, unique,
                                                              switched_off_after):
    assert error_of(tenant_admin.get("/api/v1/settings/audit-forwarding"), 403)["code"] == "permission_denied"
    assert error_of(tenant_admin.put("/api/v1/settings/audit-forwarding", json={"enabled": False}), 403)
    for body, field in (({"enabled": True, "host": "127.0.0.1", "protocol": "udp"}, "port"),
                        ({"enabled": True, "host": "127.0.0.1", "port": 514, "protocol": "tls"}, "protocol"),
                        ({"enabled": "yes"}, "enabled")):
        assert field in json.dumps(error_of(admin.put("/api/v1/settings/audit-forwarding", json=body), 422))
    receiver = SyslogReceiver("udp")
    shown = configure(admin, receiver, app_name=f"gh{unique}")
    assert shown["enabled"] is True and shown["port"] == receiver.port and shown["app_name"] == f"gh{unique}"
    assert admin.get("/api/v1/settings/audit-forwarding").json()["host"] == "127.0.0.1"
    changed = recorded(admin, 1, action="forwarding_changed", q="audit forwarding")
    newest = next(e for e in changed if e["data"].get("app_name") == f"gh{unique}")
    assert newest["type"] == "audit.forwarding_changed" and newest["tenant_ids"] == []
    assert {"enabled", "port", "app_name"} <= set(newest["data"]["fields"])


def test_forwarding_over_udp_sends_each_new_record_as_rfc5424(platform, admin, unique, switched_off_after):
    receiver = SyslogReceiver("udp").start()
    try:
        configure(admin, receiver)
        tag = f"u{unique}"
        publish(platform, event(tag, 0, outcome="failure", action="vm_failed"), event(tag, 1))
        eventually(lambda: len(forwarded(receiver, tag)) == 2, 20, 0.2, "2 records at the collector")
        message = next(parse(m) for m in receiver.messages if f'"{tag}-0"' in m)
        assert message["pri"] == "109" and message["app_name"] == "gatehouse" and message["msgid"] == "vm_failed"
        assert message["sd"]["outcome"] == "failure" and message["sd"]["tenant"] == "default"
        assert message["sd"]["actor"] == f"actor{tag}"
        assert message["record"]["resource"]["id"] == f"{tag}-0"
    finally:
        receiver.stop()


@pytest.mark.parametrize("protocol", ["tcp", "udp"])  # UDP: on loopback the outage shows as ICMP unreachable
def test_forwarding_survives_a_collector_outage_without_losing_records(platform, admin, unique, switched_off_after,
                                                                       protocol):
    receiver = SyslogReceiver(protocol).start()
    tag = f"o{unique}"
    try:
        configure(admin, receiver)
        publish(platform, event(tag, 0))
        eventually(lambda: len(forwarded(receiver, tag)) == 1, 20, 0.2, "the first record at the collector")

        receiver.stop()  # the collector goes down
        publish(platform, *(event(tag, n) for n in range(1, 6)))
        recorded(admin, 6, resource_type=tag)  # recording goes on
        status = eventually(lambda: (s := admin.get("/api/v1/settings/audit-forwarding").json())["last_error"] and s,
                            20, 0.2, "the forwarding failure shown")
        assert str(receiver.port) in status["last_error"] and status["pending"] >= 1

        receiver.start()  # back on the same port
        eventually(lambda: {r["resource"]["id"] for r in forwarded(receiver, tag)} == {f"{tag}-{n}" for n in range(6)},
                   90, 0.5, "every record missed during the outage at the collector")
        seqs = list(dict.fromkeys(r["seq"] for r in forwarded(receiver, tag)))  # a resent batch may repeat some
        assert seqs == sorted(seqs)  # in trail order
        assert eventually(lambda: admin.get("/api/v1/settings/audit-forwarding").json()["last_error"] is None, 20)
    finally:
        receiver.stop()


# --- the same queries on PostgreSQL (pg_trgm instead of FTS5), no broker ------------------------

@pytest.fixture(scope="module")
def pg_audit():
    """A migrated audit database on a throwaway PostgreSQL server."""
    base = Path(tempfile.mkdtemp(prefix="gatehouse-pg-audit-"))  # not under tmp_path: postgres must reach it
    server = LocalPostgres(base, free_port())
    try:
        server.start()
        url = server.url(server.create_database("audit_read"))
        migrate.upgrade("audit", url)
        database = ServiceDatabase("audit", url, storage.metadata)
        yield database
        database.dispose()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_reading_on_postgres_scopes_searches_and_pages(pg_audit):
    def about(n, username, **extra):
        return unit.event(n, username=username, display_name=username.title(), email=f"{username}@example.org",
                          **extra)

    append(pg_audit, [
        about(0, "alice", tenants=("a",)),
        about(1, "bob", tenants=("a", "b"), resource=Resource("vm", "1", "100% done_now")),
        about(2, "carol", tenants=(), outcome="failure", action="login_failed"),
        about(3, "alice", tenants=("b",)),
    ])
    assert unit.seqs(unit.page(pg_audit, "a")) == [2, 1]
    assert unit.seqs(unit.page(pg_audit, tenant="b")) == [4, 2]
    assert unit.seqs(unit.page(pg_audit, q="ALICE")) == [4, 1]
    assert unit.seqs(unit.page(pg_audit, q="% done_")) == [2]
    assert unit.seqs(unit.page(pg_audit, q="al")) == [4, 1]
    assert unit.seqs(unit.page(pg_audit, outcome="failure", actor="carol")) == [3]
    first = unit.page(pg_audit, limit=3)
    assert unit.seqs(first) == [4, 3, 2] and unit.seqs(unit.page(pg_audit, cursor=first["next_cursor"])) == [1]
    window = {"since": (unit.T0 + timedelta(minutes=1)).isoformat(), "until": (unit.T0 + timedelta(minutes=3)).isoformat()}
    assert unit.seqs(unit.page(pg_audit, **window)) == [3, 2]
    with pg_audit.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table would be scanned anyway
        plan = "\n".join(conn.exec_driver_sql(
            "EXPLAIN SELECT seq FROM audit_records WHERE search_text LIKE '%alice%'").scalars())
    assert "ix_audit_records_search_trgm" in plan, plan
