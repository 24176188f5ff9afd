"""kernel.amqp.rpc_server.AtMostOnceRpc: a redelivered RPC request is answered, not carried out again."""
from types import SimpleNamespace

import pytest

from nameko.rpc import Rpc

from kernel.errors import ServiceUnavailable
from kernel.amqp.rpc_server import AtMostOnceRpc


class RecordingConsumer:
    def __init__(self):
        self.results = []

    def handle_result(self, message, result, exc_info):
        self.results.append((message, result, exc_info))


def entrypoint():
    rpc = AtMostOnceRpc.__new__(AtMostOnceRpc)  # no container needed for the decision
    rpc.rpc_consumer = RecordingConsumer()
    return rpc


def message(redelivered: bool):
    return SimpleNamespace(delivery_info={"redelivered": redelivered, "routing_key": "identity.login"})


def test_a_first_delivery_runs(monkeypatch):
    ran = []
    monkeypatch.setattr(Rpc, "handle_message", lambda self, body, msg: ran.append(body))
    rpc = entrypoint()
    rpc.handle_message({"args": []}, message(redelivered=False))
    assert ran == [{"args": []}] and rpc.rpc_consumer.results == []


def test_a_redelivery_is_answered_503_and_not_run(monkeypatch):
    ran = []
    monkeypatch.setattr(Rpc, "handle_message", lambda self, body, msg: ran.append(body))
    rpc = entrypoint()
    redelivered = message(redelivered=True)
    rpc.handle_message({"args": []}, redelivered)
    assert ran == []
    [(answered, result, (kind, error, _))] = rpc.rpc_consumer.results
    assert answered is redelivered and result is None
    assert kind is ServiceUnavailable and error.status == 503 and error.code == "request_interrupted"


def test_an_answer_lost_with_the_broker_does_not_crash_the_service():
    """nameko stops a service whose worker raises while answering: a lost broker must not do that."""
    from kombu.exceptions import OperationalError

    class BrokerGone(RecordingConsumer):
        def __init__(self):
            super().__init__()
            self.queue_consumer = SimpleNamespace(ack_message=self.acked.append)

        acked = []

        def handle_result(self, message, result, exc_info):
            raise OperationalError("[Errno 111] ECONNREFUSED")

    rpc = entrypoint()
    rpc.rpc_consumer = BrokerGone()
    answered = message(redelivered=False)
    assert rpc.handle_result(answered, None, {"id": "u1"}, None) == ({"id": "u1"}, None)
    assert BrokerGone.acked == [answered]  # done is done: not redelivered to run again


class RecordingProducers:
    """Stands in for kombu's producer pools: records what each reply publishes."""

    def __init__(self):
        self.published = []

    def __getitem__(self, connection):
        return self

    def acquire(self, block):
        import contextlib

        return contextlib.nullcontext(SimpleNamespace(publish=lambda body, **options: self.published.append(
            (body, options))))


def answered(monkeypatch, result, exc_info):
    """What TypedRpcConsumer.handle_result publishes and acks for one request."""
    import json

    from kernel.amqp import rpc_server as service

    replies = RecordingProducers()
    monkeypatch.setattr(service, "producers", replies)
    consumer = service.TypedRpcConsumer.__new__(service.TypedRpcConsumer)
    acked = []
    consumer.queue_consumer = SimpleNamespace(ack_message=acked.append)
    consumer._reply_exchange, consumer._reply_connection = "nameko-rpc", None
    request = SimpleNamespace(properties={"content_type": "application/json", "reply_to": "gateway-1",
                                          "correlation_id": "c1"})
    returned = consumer.handle_result(request, result, exc_info)
    [(body, options)] = replies.published
    assert acked == [request] and options["routing_key"] == "gateway-1" and options["correlation_id"] == "c1"
    assert options["exchange"] == "nameko-rpc" and options["content_type"] == "application/json"
    return json.loads(body), returned


def test_a_reply_carries_the_result_as_namekos_responder_would(monkeypatch):
    body, returned = answered(monkeypatch, {"id": "u1"}, None)
    assert body == {"result": {"id": "u1"}, "error": None} and returned == ({"id": "u1"}, None)


def test_a_reply_carries_a_domain_error_the_caller_rebuilds(monkeypatch):
    from nameko.exceptions import deserialize

    from kernel.errors import NotFound

    error = NotFound("no such user", code="user_not_found")
    body, _ = answered(monkeypatch, None, (NotFound, error, None))
    rebuilt = deserialize(body["error"])
    assert body["result"] is None and isinstance(rebuilt, NotFound) and rebuilt.code == "user_not_found"


def test_a_result_that_cannot_be_serialized_is_answered_as_an_error(monkeypatch):
    body, (result, exc_info) = answered(monkeypatch, {"when": object()}, None)
    assert body["result"] is None and body["error"]["exc_type"] == "UnserializableValueError"
    assert result is None and exc_info is not None


def test_arguments_that_do_not_fit_the_method_are_refused_before_it_runs():
    from nameko.exceptions import IncorrectSignature

    class Service:
        def login(self, actor, login, password, user_agent=""):
            pass

    rpc = entrypoint()
    rpc.container, rpc.method_name = SimpleNamespace(service_cls=Service), "login"
    rpc.check_signature(({}, "ada", "secret"), {"user_agent": "curl"})
    for args, kwargs in ((({}, "ada"), {}), (({}, "ada", "s", "ua", "extra"), {}), (({}, "a", "s"), {"nope": 1})):
        with pytest.raises(IncorrectSignature):
            rpc.check_signature(args, kwargs)


def test_each_request_finds_its_method_and_an_unknown_one_is_refused():
    from nameko.exceptions import MethodNotFound

    from kernel.amqp.rpc_server import TypedRpcConsumer

    consumer = TypedRpcConsumer.__new__(TypedRpcConsumer)
    consumer.container = SimpleNamespace(service_name="identity")
    Provider = type("Provider", (), {})
    login, health = Provider(), Provider()
    login.method_name, health.method_name = "login", "health"
    consumer._providers = {login, health}
    assert consumer.get_provider_for_method("identity.login") is login
    assert consumer.get_provider_for_method("identity.health") is health
    with pytest.raises(MethodNotFound):
        consumer.get_provider_for_method("identity.nothing")
