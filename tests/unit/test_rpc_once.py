"""kernel.service.AtMostOnceRpc: a redelivered RPC request is answered, not carried out again."""
from types import SimpleNamespace

from nameko.rpc import Rpc

from kernel.errors import ServiceUnavailable
from kernel.service import AtMostOnceRpc


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
