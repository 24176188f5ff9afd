"""kernel.amqp's shared connection and retry policy, and the pieces that use it (no broker:
connections are inspected before they connect, or faked)."""
from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest
from kombu import Exchange, Queue, binding
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS

from kernel.amqp import batch, connection, listener
from kernel.amqp.connection import (BATCH_RETRY, BROKER_ERRORS, BROKER_TIMEOUT, CONNECT_TIMEOUT, LISTENER_RETRY,
                                    OUTBOX_RETRY, Backoff, amqp_parameters, broker_uri, connect, drop,
                                    open_connection)
from kernel.config import Config

URI = "amqp://alice:s3cret@broker.example:5673/tenant-a"


# --- the connection policy --------------------------------------------------------------

def test_the_url_comes_from_kernel_config_or_the_nameko_config():
    config = Config.from_env({"GATEHOUSE_AMQP_URI": URI})
    assert broker_uri(config) == URI
    assert broker_uri(config.nameko()) == URI  # the dict containers and the gateway hold
    assert broker_uri(Config.from_env({"GATEHOUSE_BROKER_PORT": "5999"})) == "amqp://guest:guest@127.0.0.1:5999//"
    assert open_connection(config).as_uri(include_password=True) == URI


def test_a_connection_opens_with_the_connect_timeout_and_the_pieces_heartbeat():
    opened = open_connection(URI, heartbeat=10)
    assert (opened.hostname, opened.port, opened.virtual_host, opened.userid) == (
        "broker.example", 5673, "tenant-a", "alice")
    assert opened.connect_timeout == CONNECT_TIMEOUT and opened.heartbeat == 10
    assert opened.transport_options == {}  # no retries inside the library: the caller's loop paces them
    assert open_connection(URI).heartbeat == 0  # none asked, none sent


def test_a_publisher_connection_has_confirms_and_broker_timeouts():
    opened = open_connection(URI, confirm_publish=True, io_timeout=BROKER_TIMEOUT)
    assert opened.transport_options == {"confirm_publish": True, "read_timeout": BROKER_TIMEOUT,
                                        "write_timeout": BROKER_TIMEOUT}


def test_a_named_connection_shows_its_name_to_the_broker():
    assert open_connection(URI, name="audit ingest").transport_options == {
        "client_properties": {"connection_name": "audit ingest"}}


def test_nameko_config_keeps_its_tls_login_method_and_nameko_retries_on_request():
    config = {"AMQP_URI": URI, "AMQP_SSL": {"cert_reqs": 2}, "LOGIN_METHOD": "EXTERNAL"}
    opened = open_connection(config, confirm_publish=False, nameko_retries=True)
    assert opened.ssl == {"cert_reqs": 2} and opened.login_method == "EXTERNAL"
    assert opened.transport_options == {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": False}


def test_py_amqp_parameters_name_the_same_broker_with_the_same_policy():
    parameters = amqp_parameters({"AMQP_URI": URI}, heartbeat=60)
    assert parameters == {"host": "broker.example:5673", "userid": "alice", "password": "s3cret",
                          "virtual_host": "tenant-a", "ssl": False, "login_method": None, "heartbeat": 60,
                          "connect_timeout": CONNECT_TIMEOUT}
    assert amqp_parameters({"AMQP_URI": "amqp://localhost//"}, heartbeat=60)["host"] == "localhost:5672"
    assert amqp_parameters({"AMQP_URI": URI, "AMQP_SSL": True}, heartbeat=60)["ssl"] is True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connect_retries_once_then_raises_a_broker_error():
    attempts = []
    opened = open_connection(f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    real_connect = opened._connection_factory
    opened._connection_factory = lambda: attempts.append(1) or real_connect()
    with pytest.raises(BROKER_ERRORS):
        connect(opened)
    assert len(attempts) == 2  # kombu's max_retries=1: the attempt and one retry; later ones are the caller's
    drop(opened)


def test_drop_never_raises():
    class Broken:
        def collect(self):
            raise OSError("already gone")

    drop(Broken())
    drop(None)


def test_backoff_doubles_up_to_its_maximum_and_starts_over_after_a_success():
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5


@pytest.mark.parametrize("policy,pauses", [
    (OUTBOX_RETRY, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
    (BATCH_RETRY, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]),
    (LISTENER_RETRY, [1.0] * 8),
])
def test_each_piece_backs_off_as_the_policy_says(policy, pauses):
    backoff = Backoff(*policy)
    assert [backoff.next() for _ in pauses] == pauses


def test_the_outbox_relay_backs_off_with_the_shared_policy(monkeypatch):
    from kernel import outbox

    made = []
    monkeypatch.setattr(outbox, "Backoff", lambda *policy: made.append(policy) or Backoff(*policy))
    relay = outbox.OutboxRelay.__new__(outbox.OutboxRelay)
    relay._stopping, relay._running, relay._done = SimpleNamespace(is_set=lambda: True), SimpleNamespace(
        set=lambda: None), SimpleNamespace(set=lambda: None)
    relay._flush = lambda: None
    relay.run()
    assert made == [OUTBOX_RETRY]


def test_the_audit_ingest_backs_off_with_the_shared_policy():
    from services.audit.ingest import BatchIngest

    ingest = BatchIngest()
    ingest.container = SimpleNamespace(config={"GATEHOUSE": Config.from_env({})}, service_name="audit")
    ingest.setup()
    assert (ingest._backoff.first, ingest._backoff.maximum) == BATCH_RETRY


# --- the listener -------------------------------------------------------------------------

def private(name="gateway.session-cache.test"):
    return Queue(name, bindings=[binding(Exchange("identity.events", "topic"), routing_key="#")],
                 exclusive=True, auto_delete=True, durable=False)


class Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def make_listener(recorder, handle=None):
    return listener.EventListener(URI, private(), handle or recorder.handle, on_connected=recorder.connected,
                                  on_disconnected=recorder.disconnected, on_unreadable=recorder.unreadable)


class Delivery:
    def __init__(self, exchange="identity.events"):
        self.delivery_info = {"exchange": exchange}
        self.acked = 0

    def ack(self):
        self.acked += 1


def test_the_listener_hands_each_event_with_its_source_and_acks_it():
    recorder = Recorder()
    heard = make_listener(recorder)
    for body in ({"type": "identity.user_suspended"}, json.dumps({"type": "identity.user_suspended"})):
        delivery = Delivery("identity.events")
        heard._on_message(body, delivery)
        assert delivery.acked == 1
    assert recorder.calls == [("handle", "identity", {"type": "identity.user_suspended"})] * 2


def test_an_unreadable_event_goes_to_its_owner_and_is_acked_all_the_same():
    recorder = Recorder()
    heard = make_listener(recorder)
    delivery = Delivery()
    heard._on_message("{not json", delivery)
    assert recorder.calls == [("unreadable",)] and delivery.acked == 1


def test_a_listener_queue_must_be_the_process_own():
    with pytest.raises(ValueError):
        listener.EventListener(URI, Queue("shared", durable=True), print, on_connected=print,
                               on_disconnected=print, on_unreadable=print)


class FakeListenerConnection:
    def __init__(self, fail_connect=False, deliveries=()):
        self.fail_connect, self.deliveries = fail_connect, list(deliveries)
        self.consumers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def ensure_connection(self, max_retries):
        assert max_retries == 1
        if self.fail_connect:
            raise ConnectionRefusedError("refused")

    def Consumer(self, queue, callbacks, accept):  # noqa: N802 - kombu's name
        self.consumers.append((queue, callbacks))
        return self

    def drain_events(self, timeout):
        if not self.deliveries:
            raise ConnectionResetError("the broker went away")
        self.consumers[0][1][0](*self.deliveries.pop(0))

    def heartbeat_check(self):
        pass


def test_a_listener_that_cannot_connect_reports_it_disconnected(monkeypatch):
    recorder = Recorder()
    opened = []
    monkeypatch.setattr(listener, "open_connection",
                        lambda uri, heartbeat: opened.append(heartbeat) or FakeListenerConnection(fail_connect=True))
    make_listener(recorder).listen_once()
    assert recorder.calls == [("disconnected",)] and opened == [connection.LISTENER_HEARTBEAT]


def test_a_listener_says_connected_once_bound_then_disconnected_when_the_broker_goes(monkeypatch):
    recorder = Recorder()
    fake = FakeListenerConnection(deliveries=[({"type": "rbac.role_assigned"}, Delivery("rbac.events"))])
    monkeypatch.setattr(listener, "open_connection", lambda uri, heartbeat: fake)
    backoff = Backoff(*LISTENER_RETRY)
    backoff.next()
    heard = make_listener(recorder)
    heard.listen_once(backoff)
    assert recorder.calls == [("connected",), ("handle", "rbac", {"type": "rbac.role_assigned"}), ("disconnected",)]
    assert fake.consumers[0][0].name == "gateway.session-cache.test" and not heard.connected


# --- the batching consumer ----------------------------------------------------------------

class FakeBatchConnection:
    """Delivers one message per drain; a socket.timeout when it has none."""

    def __init__(self, consumer: batch.BatchConsumer, messages):
        self.consumer, self.messages = consumer, list(messages)
        self.heartbeats = 0

    def drain_events(self, timeout):
        if not self.messages:
            raise socket.timeout()
        self.consumer._pending.append(self.messages.pop(0))

    def heartbeat_check(self):
        self.heartbeats += 1


def test_batches_are_cut_at_the_batch_size_and_the_rest_is_handed_over_at_stop():
    consumer = batch.BatchConsumer(URI, private("audit.record"), private("audit.record.dead"), batch_size=3,
                                   batch_wait=3600, name="audit ingest")
    fake = consumer._connection = FakeBatchConnection(consumer, range(7))
    batches = list(consumer.batches(lambda: not fake.messages and len(consumer._pending) == 1))
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_first_message_waits_at_most_the_batch_wait():
    consumer = batch.BatchConsumer(URI, private("audit.record"), private("audit.record.dead"), batch_size=500,
                                   batch_wait=0.0, name="audit ingest")
    fake = consumer._connection = FakeBatchConnection(consumer, ["only"])
    gathered = consumer.batches(lambda: False)
    assert next(gathered) == ["only"] and fake.heartbeats >= 1


def test_the_batch_consumer_opens_a_named_connection_with_its_heartbeat(monkeypatch):
    opened = {}

    def fake_open(uri, **policy):
        opened.update(policy, uri=uri)
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(batch, "open_connection", fake_open)
    consumer = batch.BatchConsumer(URI, private("audit.record"), private("audit.record.dead"), batch_size=500,
                                   batch_wait=0.05, name="audit ingest")
    with pytest.raises(ConnectionRefusedError):
        consumer.open()
    assert opened == {"uri": URI, "heartbeat": connection.BATCH_HEARTBEAT, "name": "audit ingest"}


def test_ack_through_settles_every_earlier_delivery_with_one_multiple_ack():
    acks = []
    consumer = batch.BatchConsumer(URI, private("audit.record"), private("audit.record.dead"), batch_size=5,
                                   batch_wait=0.05, name="audit ingest")
    consumer._channel = SimpleNamespace(basic_ack=lambda tag, multiple: acks.append((tag, multiple)))
    consumer.ack_through(SimpleNamespace(delivery_tag=42))
    assert acks == [(42, True)]
