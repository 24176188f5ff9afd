"""Audit recording: every event once, a verifiable chain, retention, dead letters, kills and two instances.

Tests that edit the audit database, kill audit or run a second instance use a Gatehouse
of their own (`store`, its own vhost and data folder, a one-second purge interval) so
the session's shared platform never sees a broken chain or a missing audit.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sqlite3
import tempfile
import threading
import time
import uuid
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from kombu import Connection, Exchange, Producer

from kernel import SERVICES, migrate
from kernel.db import create_engine
from kernel.envelope import Actor, Event, Resource
from ops.postgres import LocalPostgres
from services.audit import storage
from tests.harness import Platform, eventually, free_port, register

RETENTION_DAYS = 30


@pytest.fixture(scope="module")
def store(rabbit, tmp_path_factory):
    amqp_uri = rabbit.add_vhost(f"audit-store-{uuid.uuid4().hex[:8]}")
    running = Platform(tmp_path_factory.mktemp("audit-store"), amqp_uri, extra_env={
        "GATEHOUSE_AUDIT_PURGE_INTERVAL": "1", "GATEHOUSE_AUDIT_RETENTION_DAYS": str(RETENTION_DAYS)})
    try:
        running.start()
        yield running
    finally:
        running.stop()


# --- helpers -----------------------------------------------------------------------

def probe(source: str, run: str, n: int, type_: str = "recording_probe", **fields) -> Event:
    """A real event envelope, as a service's outbox relay would publish it."""
    return Event(type=f"{source}.{type_}", source=source, category="system", resource=Resource("probe", f"{run}-{n}"),
                 actor=fields.pop("actor", Actor(username="probe")), data={"n": n}, **fields)


def publish(platform, messages, rate: float = 0) -> None:
    """Publish (exchange, routing key, body) persistently, at `rate` per second (0: at once)."""
    with Connection(platform.env["GATEHOUSE_AMQP_URI"], connect_timeout=10) as conn:
        producer = Producer(conn.channel())
        started = time.monotonic()
        for i, (exchange, routing_key, body) in enumerate(messages):
            if rate and (ahead := started + i / rate - time.monotonic()) > 0:
                time.sleep(ahead)
            producer.publish(body, exchange=Exchange(exchange, "topic", durable=True), routing_key=routing_key,
                             content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                             retry=True)


def as_message(event: Event) -> tuple[str, str, str]:
    return event.exchange, event.type, json.dumps(event.to_dict())


def audit_db(platform):
    return closing(sqlite3.connect(f"file:{platform.base_dir / 'data' / 'audit.db'}?mode=ro", uri=True, timeout=10))


def stored_ids(platform, type_: str, run: str) -> list[str]:
    return [row[0] for row in platform.sql("audit", "SELECT event_id FROM audit_records WHERE type = :type "
                                           "AND resource_id LIKE :run", type=type_, run=f"{run}-%")]


def wait_stored(platform, type_: str, run: str, count: int, timeout: float = 60) -> list[str]:
    return eventually(lambda: (ids := stored_ids(platform, type_, run)) and len(ids) >= count and ids,
                      timeout, 0.3, f"{count} {type_} records of run {run}")


def verify(platform) -> dict:
    response = platform.admin().get("/api/v1/audit/verify")
    assert response.status_code == 200, response.text
    return response.json()


def consumers(platform, queue: str = "audit.record") -> int:
    with Connection(platform.env["GATEHOUSE_AMQP_URI"], connect_timeout=10) as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=True).consumer_count


def remove_parked(platform, tag: str) -> int:
    """Takes the messages carrying `tag` out of audit.record.dead (others go back); returns how many."""
    removed = 0
    with Connection(platform.env["GATEHOUSE_AMQP_URI"], connect_timeout=10) as conn:
        channel = conn.channel()
        while (message := channel.basic_get("audit.record.dead", no_ack=False)) is not None:
            if tag.encode() in (message.body if isinstance(message.body, bytes) else message.body.encode()):
                channel.basic_ack(message.delivery_tag)
                removed += 1
        channel.close()  # the rest, unacked, return to the queue
    return removed


def close_connections(rabbit, platform, name: str) -> int:
    """Closes the platform's broker connections whose client calls itself `name`; returns how many."""
    vhost = unquote(platform.env["GATEHOUSE_AMQP_URI"].rsplit("/", 1)[1])

    def ctl(*args):
        return subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", rabbit.node, "-q", *args], env=rabbit.env,
                              capture_output=True, text=True, timeout=60, check=True).stdout

    rows = [line.split("\t", 2) for line in ctl("list_connections", "pid", "vhost", "client_properties").splitlines()]
    pids = [pid for pid, on, properties in rows if on == vhost and f'"{name}"' in properties]
    for pid in pids:
        ctl("close_connection", pid, "test: the broker drops the ingest")
    return len(pids)


# --- recording, on the shared platform ----------------------------------------------------

@pytest.mark.sqlite_only  # compares the stored columns in SQLite's forms
def test_every_services_events_are_recorded_once_with_their_snapshots(platform, unique):
    """Types nobody declared before (added later) included; the same id published twice is one record."""
    actor = Actor(user_id="u-" + unique, username=f"snap{unique}", display_name="Snap Shot",
                  email=f"Snap{unique}@Example.com", ip="10.1.2.3", request_id="req-" + unique)
    sent = [probe(source, unique, i, actor=actor, tenant_ids=("default", "t-" + unique))
            for i, source in enumerate(SERVICES)]
    publish(platform, [as_message(e) for e in sent] + [as_message(sent[0])])
    admin = platform.admin()
    for event in sent:
        [record] = eventually(lambda: [r for r in admin.audit(action="recording_probe")
                                       if r["id"] == event.id], 20, 0.3, f"{event.type} recorded")
        assert (record["type"], record["source"], record["category"]) == (event.type, event.source, "system")
    with audit_db(platform) as db:
        rows = db.execute(
            "SELECT event_id, occurred_at, actor_id, actor_username, actor_display_name, actor_email, actor_ip, "
            "request_id, resource_type, resource_id, tenant_ids, data, search_text, seq FROM audit_records "
            "WHERE resource_id LIKE ? ORDER BY seq", (f"{unique}-%",)).fetchall()
        assert [row[0] for row in rows] == [e.id for e in sent]  # once each, in publish order
        for row, event in zip(rows, sent):
            assert row[1:12] == (event.occurred_at, actor.user_id, actor.username, "Snap Shot", actor.email,
                                 "10.1.2.3", actor.request_id, "probe", event.resource.id,
                                 json.dumps(["default", "t-" + unique]), json.dumps(event.data))
            assert row[12] == f"snap{unique} snap shot snap{unique}@example.com recording_probe"
            tenants = db.execute("SELECT tenant_id FROM audit_record_tenants WHERE seq = ? ORDER BY tenant_id",
                                 (row[13],)).fetchall()
            assert [t[0] for t in tenants] == ["default", "t-" + unique]


def test_audits_health_reports_its_ingest(platform, unique):
    from nameko.standalone.rpc import ClusterRpcProxy

    register(platform.api(), f"hl{unique}")
    with ClusterRpcProxy({"AMQP_URI": platform.env["GATEHOUSE_AMQP_URI"], "serializer": "json"}, timeout=10) as rpc:
        ingest = eventually(lambda: (health := rpc.audit.health())["ingest"]["acked"] and health["ingest"], 20, 0.3,
                            "audit acked events")
    assert ingest["queue"] == "audit.record" and ingest["connected"] is True and ingest["batches"] >= 1


def test_verify_is_for_super_admins_only(platform, unique):
    _, member = platform.create_user(f"ver{unique}")
    assert platform.api().get("/api/v1/audit/verify").status_code == 401
    refused = member.get("/api/v1/audit/verify")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert member.get("/api/v1/audit/dead-letters").status_code == 403


def test_the_openapi_spec_documents_verify_and_dead_letters(platform):
    paths = platform.api().get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/audit/verify", "/api/v1/audit/dead-letters"):
        operation = paths[path]["get"]
        assert operation["summary"] and operation["security"] and {"200", "401", "403"} <= set(operation["responses"])
    assert [p["name"] for p in paths["/api/v1/audit/dead-letters"]["get"]["parameters"]] == ["limit"]


def test_the_shared_trail_verifies(platform, unique):
    register(platform.api(), f"vv{unique}")
    result = verify(platform)
    assert result["valid"] is True and result["first_break"] is None, result
    assert result["checked"] >= 1 and result["head_seq"] >= result["checked"]


def test_poison_is_parked_listed_and_counted_while_the_rest_is_recorded(platform, unique):
    """Three kinds of poison among valid events: not JSON, not a valid envelope, valid but unstorable."""
    run = f"dl{unique}"
    valid = [probe("rbac", run, i) for i in range(4)]
    invalid = probe("rbac", run, 98).to_dict() | {"category": "no-such-category", "tag": run}
    # A lone surrogate passes the envelope's checks but cannot be encoded for hashing or storing.
    unstorable = probe("rbac", run, 99).to_dict() | {"resource": {"type": "probe", "id": f"{run}-99", "name": "\ud800"}}
    publish(platform, [as_message(valid[0]), ("rbac.events", "rbac.garbage", f"{{not json {run}"),
                       as_message(valid[1]), ("rbac.events", invalid["type"], json.dumps(invalid)),
                       as_message(valid[2]), ("rbac.events", unstorable["type"], json.dumps(unstorable)),
                       as_message(valid[3])])
    wait_stored(platform, "rbac.recording_probe", run, 4)
    admin = platform.admin()
    try:
        def listed():
            page = admin.get("/api/v1/audit/dead-letters", params={"limit": 200}).json()
            mine = {item["event_id"]: item for item in page["items"] if run in item["body_preview"]}
            return (page, mine) if len(mine) == 3 else None

        page, mine = eventually(listed, 20, 0.5, "the three poison messages listed")
        assert page["queue"] == "audit.record.dead" and page["total"] >= 3 and page["next_cursor"] is None
        assert mine[None]["event_type"] is None and mine[None]["routing_key"] == "rbac.garbage"
        assert mine[invalid["id"]]["event_type"] == invalid["type"]
        assert mine[unstorable["id"]]["routing_key"] == unstorable["type"]
        for item in mine.values():
            assert item["exchange"] == "rbac.events" and item["queue"] == "audit.record"
            assert item["reason"] == "rejected" and item["died_at"].endswith("Z") and item["size"] > 0
        again = admin.get("/api/v1/audit/dead-letters", params={"limit": 200}).json()
        assert len([item for item in again["items"] if run in item["body_preview"]]) == 3  # reading lost nothing
        assert admin.get("/api/v1/audit/dead-letters", params={"limit": 0}).status_code == 422
    finally:
        assert remove_parked(platform, run) == 3
    assert len(stored_ids(platform, "rbac.recording_probe", run)) == 4
    log = (platform.base_dir / "logs" / "audit.log").read_text()
    assert "not a valid event" in log and "could not be stored" in log


# --- tampering, retention, kills and a second instance: on a Gatehouse of their own ------

def test_verify_names_a_record_edited_in_the_database(store, unique):
    run = f"tm{unique}"
    publish(store, [as_message(probe("identity", run, i)) for i in range(5)])
    [target, *_] = sorted(wait_stored(store, "identity.recording_probe", run, 5))
    path = store.base_dir / "data" / "audit.db"
    with closing(sqlite3.connect(path, timeout=10)) as db:
        seq, name = db.execute("SELECT seq, resource_name FROM audit_records WHERE event_id = ?",
                               (target,)).fetchone()
        with db:
            db.execute("UPDATE audit_records SET resource_name = 'someone else' WHERE seq = ?", (seq,))
        try:
            result = verify(store)
            cli = store.run_gatehouse("audit", "verify")  # the operator's check, for scripts
        finally:
            with db:
                db.execute("UPDATE audit_records SET resource_name = ? WHERE seq = ?", (name, seq))
    assert result["valid"] is False
    assert result["first_break"] == {"seq": seq, "event_id": target, "reason": "content_changed"}
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert f"BROKEN at seq {seq}" in cli.stdout and target in cli.stdout and "content_changed" in cli.stdout
    assert verify(store)["valid"] is True  # restored


def test_retention_purges_the_oldest_records_and_the_chain_still_verifies(store, unique):
    register(store.api(), f"rt{unique}")  # something newer than what is backdated
    path = store.base_dir / "data" / "audit.db"
    with closing(sqlite3.connect(path, timeout=10)) as db:
        first, last = db.execute("SELECT min(seq), max(seq) FROM audit_records").fetchone()
        through = first + 3
        assert last > through + 1, "needs records newer than the backdated ones"
        with db:  # how age is simulated: the oldest records were recorded long ago
            db.execute("UPDATE audit_records SET recorded_at = '2020-01-01 00:00:00.000000' WHERE seq <= ?",
                       (through,))

    def purged():
        with audit_db(store) as ro:
            return ro.execute("SELECT start_seq, purged FROM audit_chain_checkpoints ORDER BY id DESC").fetchone()

    assert eventually(purged, 30, 0.3, "a purge checkpoint") == (through + 1, through - first + 1)
    with audit_db(store) as ro:
        assert ro.execute("SELECT min(seq) FROM audit_records").fetchone()[0] == through + 1
        assert ro.execute("SELECT count(*) FROM audit_record_tenants WHERE seq <= ?", (through,)).fetchone()[0] == 0
    admin = store.admin()
    [record] = eventually(lambda: [r for r in admin.audit(action="records_purged")
                                   if r["data"]["through_seq"] == through], 20, 0.3, "the purge's own record")
    assert record["category"] == "audit" and record["source"] == "audit"
    assert record["data"]["count"] == through - first + 1 and record["data"]["retention_days"] == RETENTION_DAYS
    result = verify(store)
    assert result["valid"] is True and result["start_seq"] == through + 1, result


def test_a_kill_between_commit_and_ack_stores_each_event_once(store, unique):
    """The failpoint kills audit right after its first batch commits, before the ack: redelivered, deduped."""
    run = f"fp{unique}"
    store.restart("audit", {"GATEHOUSE_FAILPOINTS": "audit.after_commit=ingest"})
    audit = store.process("audit")
    publish(store, [as_message(probe("tenancy", run, i)) for i in range(50)])
    eventually(lambda: audit.poll() is not None, 30, 0.2, "audit killed by its failpoint")
    assert audit.returncode == -signal.SIGKILL
    assert stored_ids(store, "tenancy.recording_probe", run), "the batch was committed before the kill"
    store.restart("audit")
    ids = wait_stored(store, "tenancy.recording_probe", run, 50)
    time.sleep(1)  # any further redelivery would have landed by now
    assert sorted(stored_ids(store, "tenancy.recording_probe", run)) == sorted(ids) and len(ids) == 50
    assert verify(store)["valid"] is True


def test_sigkill_under_load_loses_and_doubles_nothing(store, unique):
    run, count = f"sk{unique}", 3000
    sent = [probe("proxmox_sync", run, i) for i in range(count)]
    publisher = threading.Thread(target=publish, args=(store, [as_message(e) for e in sent], 300))
    publisher.start()
    try:
        for _ in range(2):  # each kill once the (re)started audit is busy storing, while events keep arriving
            threshold = len(stored_ids(store, "proxmox_sync.recording_probe", run)) + 200
            eventually(lambda: len(stored_ids(store, "proxmox_sync.recording_probe", run)) >= threshold,
                       60, 0.05, f"{threshold} stored before the kill")
            assert publisher.is_alive(), "the kill must land mid-stream"
            store.supervisor.kill("audit", signal.SIGKILL)
            assert store.process("audit").returncode == -signal.SIGKILL
            store.restart("audit")
    finally:
        publisher.join(120)
    ids = wait_stored(store, "proxmox_sync.recording_probe", run, count, timeout=120)
    time.sleep(1)
    stored = stored_ids(store, "proxmox_sync.recording_probe", run)
    assert len(stored) == count and set(stored) == {e.id for e in sent} == set(ids)
    result = verify(store)
    assert result["valid"] is True, result


def test_two_audit_instances_keep_one_valid_chain(store, unique):
    run, count = f"two{unique}", 3000
    second = store.supervisor.start("audit", instance=1)
    try:
        eventually(lambda: consumers(store) == 2, 60, 0.3, "two consumers on audit.record")
        sent = [probe("identity", run, i) for i in range(count)]
        publish(store, [as_message(e) for e in sent])
        wait_stored(store, "identity.recording_probe", run, count, timeout=120)
        assert second.poll() is None, "the second instance kept running"
    finally:
        store.supervisor.kill("audit#1", signal.SIGTERM)
    stored = stored_ids(store, "identity.recording_probe", run)
    assert len(stored) == count and set(stored) == {e.id for e in sent}
    with audit_db(store) as db:
        seqs = [row[0] for row in db.execute("SELECT seq FROM audit_records ORDER BY seq")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "one gapless sequence"
    result = verify(store)
    assert result["valid"] is True and result["checked"] >= len(seqs), result  # the admin's sign-in adds one


def test_the_ingest_reconnects_by_itself_when_the_broker_drops_it(store, rabbit, unique):
    """The broker closes the ingest's connection (as on a broker restart): audit reconnects, nothing is lost."""
    run = f"rc{unique}"
    closed = close_connections(rabbit, store, "audit ingest")
    assert closed >= 1
    publish(store, [as_message(probe("rbac", run, i)) for i in range(20)])
    assert len(wait_stored(store, "rbac.recording_probe", run, 20, timeout=60)) == 20
    assert store.process("audit").poll() is None, "audit reconnected instead of dying"
    log = (store.base_dir / "logs" / "audit.log").read_text()
    assert "reconnecting" in log


# --- the same writer rules on PostgreSQL (several instances share one database there) --------

@pytest.fixture(scope="module")
def audit_on_postgres():
    """A throwaway PostgreSQL holding a migrated audit database; yields its URL."""
    base = Path(tempfile.mkdtemp(prefix="gatehouse-audit-pg-"))  # reachable by the postgres user
    server = LocalPostgres(base, free_port())
    try:
        server.start()
        url = server.url(server.create_database("audit"))
        migrate.upgrade("audit", url)
        yield url
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_concurrent_appenders_on_postgres_make_one_chain_and_purge_keeps_it(audit_on_postgres):
    """Four writers (as four audit instances would) append at once: FOR UPDATE on the head serializes them."""
    engines = [create_engine(audit_on_postgres) for _ in range(4)]
    start, errors, per_writer, batch = threading.Barrier(len(engines)), [], 300, 25
    recorded_at = datetime.now(timezone.utc)

    def write(engine, writer):
        start.wait()
        try:
            for first in range(0, per_writer, batch):
                rows = [storage.record_from_event(probe("identity", f"pg{writer}", n), recorded_at)
                        for n in range(first, first + batch)]
                with engine.connect() as conn:
                    storage.begin_write(conn)
                    storage.append(conn, rows)
                    conn.commit()
        except Exception as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=write, args=(engine, i)) for i, engine in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert not errors, errors
        with engines[0].connect() as conn:
            seqs = conn.scalars(sa.select(storage.AuditRecord.seq).order_by(storage.AuditRecord.seq)).all()
        with engines[0].connect() as conn:
            storage.begin_snapshot(conn)
            result = storage.verify(conn, chunk=500)
        assert seqs == list(range(1, len(engines) * per_writer + 1))
        assert result == {"valid": True, "checked": len(seqs), "start_seq": 1, "head_seq": len(seqs),
                          "first_break": None}

        with engines[0].begin() as conn:  # the first 100 grew old
            conn.execute(sa.update(storage.AuditRecord).where(storage.AuditRecord.seq <= 100)
                         .values(recorded_at=recorded_at - timedelta(days=RETENTION_DAYS + 1)))
        with engines[1].connect() as conn:
            storage.begin_write(conn)
            purged = storage.purge(conn, recorded_at - timedelta(days=RETENTION_DAYS), recorded_at, 10_000)
            conn.commit()
        assert purged == {"count": 100, "through_seq": 100, "start_seq": 101}
        with engines[2].connect() as conn:
            storage.begin_snapshot(conn)
            assert storage.verify(conn) == {"valid": True, "checked": len(seqs) - 100, "start_seq": 101,
                                            "head_seq": len(seqs), "first_break": None}
    finally:
        for engine in engines:
            engine.dispose()
