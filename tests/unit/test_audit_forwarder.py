"""Syslog forwarding (services/audit/forwarder.py): the RFC 5424 format, the transports against a
real loopback collector, and the forwarding loop on a migrated SQLite store."""
import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from kernel import migrate
from kernel.db import ServiceDatabase
from services.audit import forwarder, storage
from services.audit.forwarder import Forwarder, Target, Unreachable, octet_counted, rfc5424
from tests.harness import eventually
from tests.syslog_receiver import SyslogReceiver, parse
from tests.unit.test_audit_queries import append, event

RECORD = {
    "id": "e-1", "seq": 7, "type": "identity.password_reset_requested", "source": "identity", "category": "auth",
    "action": "password_reset_requested", "outcome": "failure", "occurred_at": "2026-03-01T12:00:00.123456Z",
    "recorded_at": "2026-03-01T12:00:00.200000Z", "request_id": "r-1", "tenant_ids": ["t1", "t2"],
    "actor": {"user_id": "u-1", "username": 'ev"il]\\name', "display_name": "Zoë", "email": None, "ip": "10.0.0.1"},
    "resource": {"type": "user", "id": "u-1", "name": "x"}, "data": {"reason": "unknown ünïcode"},
}


# --- RFC 5424 ------------------------------------------------------------------------

def test_a_record_becomes_one_rfc5424_message():
    message = rfc5424(RECORD, "gatehouse", "audit-host", 1234)
    text = message.decode()
    assert text.startswith("<109>1 2026-03-01T12:00:00.123456Z audit-host gatehouse 1234 ")  # log audit, notice
    fields = parse(text)
    assert fields["msgid"] == "password_reset_requested"[:32]
    assert fields["sd"] == {"seq": "7", "event_id": "e-1", "type": "identity.password_reset_requested",
                            "outcome": "failure", "actor": 'ev"il]\\name', "actor_id": "u-1", "tenant": "t1 t2"}
    assert '\\"' in text and "\\]" in text and "\\\\" in text  # PARAM-VALUE escapes (RFC 5424 6.3.3)
    assert fields["msg"].startswith("\ufeff")  # UTF-8 MSG starts with a BOM
    assert fields["record"] == RECORD


def test_success_is_informational_and_missing_fields_are_nil():
    text = rfc5424({"seq": 1, "outcome": "success", "occurred_at": "not a time", "action": "x" * 40}, "app", "",
                   None).decode()
    header = text.split(" [", 1)[0]
    assert header == "<110>1 - - app - " + "x" * 32  # MSGID at most 32 characters


def test_tcp_frames_are_octet_counted():
    assert octet_counted("é".encode()) == b"2 \xc3\xa9"


@pytest.mark.parametrize("config, field", [
    ({"enabled": "yes"}, "enabled"),
    ({"enabled": True, "port": 514, "protocol": "tcp"}, "host"),
    ({"enabled": True, "host": "siem", "protocol": "tcp"}, "port"),
    ({"enabled": True, "host": "siem", "port": 70000, "protocol": "tcp"}, "port"),
    ({"enabled": True, "host": "siem", "port": 514, "protocol": "tls"}, "protocol"),
    ({"enabled": True, "host": "siem", "port": 514, "protocol": "udp", "app_name": "has space"}, "app_name"),
    ({"enabled": True, "host": "si em", "port": 514, "protocol": "udp"}, "host"),
    ({"enabled": False, "colour": "red"}, "colour"),
])
def test_configuration_problems_name_the_field(config, field):
    assert field in forwarder.config_problems(config)


def test_valid_configurations():
    assert forwarder.config_problems({"enabled": False}) == {}
    assert forwarder.config_problems({"enabled": True, "host": "siem.example.org", "port": 6514, "protocol": "tcp",
                                      "app_name": "gh"}) == {}


# --- transports against a real collector ------------------------------------------------

@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_senders_deliver_and_notice_a_collector_outage(protocol):
    receiver = SyslogReceiver(protocol).start()
    sender = forwarder.sender_for(Target("127.0.0.1", receiver.port, protocol))
    try:
        sender.send([b"one", b"two"])
        eventually(lambda: receiver.messages == ["one", "two"], 5)
        receiver.stop()
        with pytest.raises(Unreachable) as failed:
            sender.send([b"lost"])
        assert str(receiver.port) in str(failed.value)
        receiver.start()
        sender.send([b"three"])
        eventually(lambda: receiver.messages == ["one", "two", "three"], 5)
    finally:
        sender.close()
        receiver.stop()


# --- the loop -------------------------------------------------------------------------------

@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate.upgrade("audit", url)
    database = ServiceDatabase("audit", url, storage.metadata)
    yield database
    database.dispose()


class Clock:
    def __init__(self):
        self.now = datetime(2026, 3, 1, tzinfo=timezone.utc)
        self.seconds = 0.0

    def __call__(self):
        return self.now

    def monotonic(self):
        return self.seconds

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds


def enable(db, clock, receiver):
    config = {"enabled": True, "host": "127.0.0.1", "port": receiver.port, "protocol": receiver.protocol,
              "app_name": "gh"}
    with db.unit_of_work() as uow:
        forwarder.write_config(uow.session, config, None, clock())
        forwarder.start_position(uow.session, clock())
        uow.commit()
    return forwarder.target_of(config)


def state(db):
    with db.unit_of_work() as uow:
        row = uow.session.get(storage.ForwarderState, forwarder.NAME)
        return row.last_seq, row.last_error


def test_forwarding_starts_after_the_newest_record_and_survives_an_outage(db):
    clock, receiver = Clock(), SyslogReceiver("tcp").start()
    one = Forwarder("host", clock, clock.monotonic)
    try:
        append(db, [event(i) for i in range(3)])  # before forwarding was switched on: not sent
        target = enable(db, clock, receiver)
        append(db, [event(i) for i in range(3, 5)])
        assert one.run_once(db, target) == 2
        eventually(lambda: [r["seq"] for r in receiver.records()] == [4, 5], 5)
        assert parse(receiver.messages[0])["app_name"] == "gh"

        receiver.stop()
        append(db, [event(i) for i in range(5, 8)])  # recording goes on during the outage
        assert one.run_once(db, target) == 0
        assert state(db)[0] == 5 and "Connection refused" in state(db)[1]
        receiver.start()
        assert one.run_once(db, target) == 0  # still pausing (1 s after the first failure)
        clock.advance(1.5)
        assert one.run_once(db, target) == 3
        eventually(lambda: [r["seq"] for r in receiver.records()] == [4, 5, 6, 7, 8], 5)
        assert state(db) == (8, None)
    finally:
        one.close()
        receiver.stop()


def test_one_instance_forwards_at_a_time_and_another_takes_over_an_abandoned_lease(db):
    clock, receiver = Clock(), SyslogReceiver("udp").start()
    first, second = Forwarder("a", clock, clock.monotonic), Forwarder("b", clock, clock.monotonic)
    try:
        target = enable(db, clock, receiver)
        append(db, [event(0)])
        assert first.run_once(db, target) == 1
        append(db, [event(1)])
        assert second.run_once(db, target) == 0  # the first holds the lease
        clock.advance(3)
        assert first.run_once(db, target) == 1  # renewing it
        append(db, [event(2)])
        clock.advance(forwarder.LEASE.total_seconds() + 1)  # the first stops renewing
        assert second.run_once(db, target) == 1
        assert first.run_once(db, target) == 0  # and lost it
        eventually(lambda: [r["seq"] for r in receiver.records()] == [1, 2, 3], 5)
    finally:
        first.close()
        second.close()
        receiver.stop()


def test_forwarding_switched_off_sends_nothing(db):
    clock = Clock()
    append(db, [event(0)])
    idle = Forwarder("a", clock, clock.monotonic)
    assert idle.run_once(db, forwarder.target_of({"enabled": False})) == 0
    with db.unit_of_work() as uow:
        assert uow.session.get(storage.ForwarderState, forwarder.NAME) is None


def test_status_shows_the_configuration_and_the_backlog(db):
    clock, receiver = Clock(), SyslogReceiver("udp")
    enable(db, clock, receiver)
    append(db, [event(i) for i in range(4)])
    with db.unit_of_work() as uow:
        shown = forwarder.status(uow.session)
    assert shown["enabled"] is True and shown["port"] == receiver.port and shown["pending"] == 4
    assert shown["last_forwarded_seq"] == 0 and shown["last_error"] is None
    assert json.dumps(shown)  # plain JSON for the RPC
    with db.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(storage.Setting)) == 1
