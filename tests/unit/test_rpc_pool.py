"""gateway.rpc.RpcPool (kernel.amqp.rpc_client) against a fake broker: replies reach the right caller, and every failure
(timeout, lost connection, unknown service, a service's error) ends the call with a clear error."""
import json
import queue
import threading

import pytest
from amqp import spec
from amqp.exceptions import ChannelError, error_for_code
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService, serialize

from gateway import rpc
from kernel.amqp import rpc_client
from kernel.errors import NotFound


class FakeBroker:
    """Routes each published request to `services[routing_key]` and delivers its answer to the
    reply consumer, on the reader thread, as RabbitMQ and a nameko service would."""

    def __init__(self):
        self.services = {}  # "identity.health" -> fn(*args, **kwargs) -> result
        self.silent = set()  # routing keys whose requests are taken but never answered
        self.requests = []  # (routing_key, message) of every request published
        self.connections = []
        self.refuse_connections = False

    def answer(self, routing_key, message):
        service = self.services.get(routing_key)
        if service is None or routing_key in self.silent:
            return None
        body = json.loads(message.body)
        try:
            payload = {"result": service(*body["args"], **body["kwargs"]), "error": None}
        except Exception as error:  # the service's failure, as nameko serializes it
            payload = {"result": None, "error": serialize(error)}
        return json.dumps(payload)


class FakeSocket:
    def settimeout(self, timeout):
        pass


class Delivered:
    def __init__(self, body, correlation_id):
        self.body, self.properties = body, {"correlation_id": correlation_id}


class FakeChannel:
    def __init__(self, connection):
        self.connection = connection
        self.events = {"basic_return": set()}
        self.consumer = None

    def exchange_declare(self, *args, **kwargs):
        pass

    def queue_declare(self, *args, **kwargs):
        pass

    def queue_bind(self, *args, **kwargs):
        pass

    def basic_consume(self, queue_name, no_ack, callback):
        self.consumer = callback

    def basic_publish(self, message, exchange, routing_key, mandatory):
        if self.connection.broken:
            raise ConnectionResetError("connection reset by peer")
        broker = self.connection.broker
        broker.requests.append((routing_key, message))
        correlation_id = message.properties["correlation_id"]
        if routing_key.partition(".")[0] not in {key.partition(".")[0] for key in broker.services}:
            error = error_for_code(312, "NO_ROUTE", spec.Basic.Return, ChannelError)  # as py-amqp raises it
            self.connection.inbox.put(lambda: [ret(error, exchange, routing_key, Delivered(None, correlation_id))
                                               for ret in self.events["basic_return"]])
        elif (answer := broker.answer(routing_key, message)) is not None:
            self.connection.inbox.put(lambda: self.consumer(Delivered(answer, correlation_id)))


class FakeConnection:
    broker: FakeBroker

    def __init__(self, **parameters):
        self.parameters = parameters
        self.inbox = queue.Queue()
        self.broken = False
        self.transport = type("Transport", (), {"sock": FakeSocket()})()
        type(self).broker.connections.append(self)

    def connect(self):
        if self.broker.refuse_connections:
            raise ConnectionRefusedError("[Errno 111] Connection refused")

    def channel(self):
        self.channel_ = FakeChannel(self)
        return self.channel_

    def drain_events(self, timeout):
        delivery = self.inbox.get()
        if delivery is None:
            raise ConnectionResetError("connection reset by peer")
        delivery()

    def heartbeat_tick(self):
        pass

    def drop(self):
        """The broker went away (a restart): reads and writes fail from now on."""
        self.broken = True
        self.inbox.put(None)

    def close(self):
        self.inbox.put(None)

    def collect(self):
        pass


@pytest.fixture
def broker(monkeypatch):
    broker = FakeBroker()
    monkeypatch.setattr(rpc_client, "_SingleThreadedReads", type("Connection", (FakeConnection,), {"broker": broker}))
    broker.services["identity.health"] = lambda: {"service": "identity"}
    return broker


@pytest.fixture
def pool(broker):
    pool = rpc.RpcPool({"AMQP_URI": "amqp://guest:guest@localhost:5672//"}, size=4, timeout=0.5,
                       context=lambda: {"request_id": "r1", "user_id": "u1", "tenant_id": None})
    yield pool
    pool.close()


def test_concurrent_callers_share_one_connection_and_each_gets_its_own_answer(pool, broker):
    broker.services["identity.echo"] = lambda value: value
    answers, errors = [], []

    def work(n):
        try:
            for i in range(20):
                with pool.client() as client:
                    answers.append((n, i, client.identity.echo(f"{n}-{i}")))
        except Exception as error:  # asserted below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert sorted(answers) == sorted((n, i, f"{n}-{i}") for n in range(8) for i in range(20))
    assert pool.connections_opened == 1 and len(broker.connections) == 1


def test_each_request_speaks_namekos_protocol_with_the_callers_context(pool, broker):
    broker.services["identity.login"] = lambda actor, login, password, user_agent="": {"login": login}
    with pool.client() as client:
        assert client.identity.login({}, "ada", "secret", user_agent="curl") == {"login": "ada"}
    routing_key, message = broker.requests[-1]
    assert routing_key == "identity.login"
    assert json.loads(message.body) == {"args": [{}, "ada", "secret"], "kwargs": {"user_agent": "curl"}}
    headers = message.properties["application_headers"]
    assert headers["nameko.request_id"] == "r1" and headers["nameko.user_id"] == "u1"
    assert "nameko.tenant_id" not in headers  # None is not sent
    assert message.properties["reply_to"] == pool._link.reply_key
    assert message.properties["content_type"] == "application/json"


def test_a_domain_error_arrives_as_its_own_class_and_the_connection_stays(pool, broker):
    def missing(user_id):
        raise NotFound("no such user", code="user_not_found")

    broker.services["identity.get_user"] = missing
    with pytest.raises(NotFound) as raised:
        with pool.client() as client:
            client.identity.get_user("u9")
    assert raised.value.code == "user_not_found" and raised.value.status == 404
    with pool.client() as client:
        assert client.identity.health() == {"service": "identity"}
    assert pool.connections_opened == 1


def test_an_unexpected_service_error_is_a_remote_error(pool, broker):
    broker.services["identity.crash"] = lambda: 1 / 0
    with pytest.raises(RemoteError) as raised:
        with pool.client() as client:
            client.identity.crash()
    assert raised.value.exc_type == "ZeroDivisionError"


def test_no_answer_times_out_and_a_late_answer_is_dropped(pool, broker):
    broker.silent.add("identity.hang")
    with pytest.raises(RpcTimeout, match="identity.hang gave no answer in time"):
        with pool.client() as client:
            client.identity.hang()
    link = pool._link
    _, late = broker.requests[-1]
    link._on_reply(Delivered(json.dumps({"result": "late", "error": None}), late.properties["correlation_id"]))
    assert link._pending == {}
    with pool.client() as client:  # the connection is still good
        assert client.identity.health() == {"service": "identity"}


def test_a_service_no_queue_takes_is_unknown(pool):
    with pytest.raises(UnknownService):
        with pool.client() as client:
            client.nosuchservice.health()


def test_a_lost_connection_fails_the_waiting_call_at_once_and_the_next_call_reconnects(pool, broker):
    broker.silent.add("identity.hang")
    waiting = []

    def call():
        try:
            with pool.client() as client:
                client.identity.hang()
        except Exception as error:  # asserted below
            waiting.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    while not broker.requests:
        pass
    broker.connections[0].drop()
    caller.join(0.4)  # well before the 0.5 s timeout
    assert len(waiting) == 1 and isinstance(waiting[0], rpc.ReplyLost)  # an RpcTimeout: it may have run
    with pool.client() as client:
        assert client.identity.health() == {"service": "identity"}
    assert pool.connections_opened == 2


def test_a_publish_on_a_connection_the_broker_dropped_goes_out_once_more_on_a_new_one(pool, broker):
    with pool.client() as client:
        client.identity.health()
    broker.connections[0].broken = True  # dropped, and the reader has not noticed yet
    with pool.client() as client:
        assert client.identity.health() == {"service": "identity"}
    assert pool.connections_opened == 2


def test_an_unreachable_broker_is_a_connection_error(pool, broker):
    broker.refuse_connections = True
    with pytest.raises(ConnectionError, match="not reachable"):
        with pool.client() as client:
            client.identity.health()
    broker.refuse_connections = False
    with pool.client() as client:
        assert client.identity.health() == {"service": "identity"}


def test_no_more_clients_in_use_than_the_size(broker):
    pool = rpc.RpcPool({"AMQP_URI": "amqp://localhost//"}, size=1, timeout=0.2)
    with pool.client():
        with pytest.raises(RpcTimeout, match="no RPC client free"):
            with pool.client():
                pass


def test_calls_sent_together_are_answered_each_to_its_own_reply(pool, broker):
    """readyz asks every service at once (call_async), then collects the answers."""
    broker.services["rbac.health"] = lambda: {"service": "rbac"}
    broker.silent.add("rbac.health")
    with pool.client() as client:
        replies = {name: getattr(client, name).health.call_async() for name in ("identity", "rbac")}
        assert replies["identity"].result() == {"service": "identity"}
        with pytest.raises(RpcTimeout):
            replies["rbac"].result()


def test_a_process_that_imports_only_the_client_gets_domain_errors_as_their_classes():
    """A script or test using RpcPool alone (no gateway app) still sees NotFound, not RemoteError."""
    import subprocess
    import sys

    check = ("import gateway.rpc, nameko.exceptions as e; "
             "print(type(e.deserialize({'exc_path': 'kernel.errors.NotFound', 'exc_type': 'NotFound', "
             "'exc_args': ['gone', 'not_found', {}, None], 'value': 'gone'})).__name__)")
    answer = subprocess.run([sys.executable, "-W", "ignore", "-c", check], capture_output=True, text=True, timeout=60)
    assert answer.stdout.strip() == "NotFound", answer.stderr[-500:]
