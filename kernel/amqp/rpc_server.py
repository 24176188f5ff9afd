"""The services' RPC entrypoint: nameko's, answering at less cost and at most once per request.

kernel.service's `@rpc` declares it. The queue is kernel.topology's `rpc-<service>` (of the
configured type), the protocol nameko's (the gateway's kernel.amqp.rpc_client and nameko's
own proxies call it alike).
"""
from __future__ import annotations

import functools
import inspect
import logging
import sys

import kombu.serialization
from kombu.pools import producers
from nameko.amqp.publish import DEFAULT_RETRY_POLICY
from nameko.exceptions import IncorrectSignature, MethodNotFound, UnserializableValueError, serialize
from nameko.rpc import Rpc, RpcConsumer, get_rpc_exchange

from kernel.amqp.connection import BROKER_ERRORS, open_connection
from kernel.errors import ServiceUnavailable
from kernel.topology import rpc_queue

log = logging.getLogger("kernel.service")  # the name its warnings always had

__all__ = ["AtMostOnceRpc", "BROKER_ERRORS", "TypedRpcConsumer"]


class TypedRpcConsumer(RpcConsumer):
    """nameko's RPC consumer, its queue `rpc-<service>` of the configured type (quorum on a
    cluster); nameko itself always declares it classic.

    It answers as nameko's Responder does (same reply body, routing and correlation id), at
    less cost per call: the reply is serialized once (nameko serializes it twice, the first
    time only to check that it can), goes out on a producer of one connection pool built at
    setup (nameko builds a Publisher and a kombu Connection per reply), transient (reply queues
    are not durable), and without a publisher confirm: a reply the broker loses leaves its
    caller timing out (504) either way, confirmed or not (see AtMostOnceRpc)."""

    def setup(self):
        super().setup()
        self.queue = rpc_queue(self.container.service_name, self.container.config.get("GATEHOUSE"))
        config = self.container.config
        self._reply_exchange = get_rpc_exchange(config)
        # as nameko's publisher's (its reconnection attempts within a publish), without confirms
        self._reply_connection = open_connection(config, confirm_publish=False, nameko_retries=True)

    def get_provider_for_method(self, routing_key):
        """nameko formats and compares every method's routing key per request; this looks it up."""
        by_key = getattr(self, "_providers_by_key", None)
        if by_key is None or len(by_key) != len(self._providers):  # built once the entrypoints are registered
            service_name = self.container.service_name
            by_key = self._providers_by_key = {f"{service_name}.{p.method_name}": p for p in self._providers}
        try:
            return by_key[routing_key]
        except KeyError:
            raise MethodNotFound(routing_key.split(".")[-1]) from None

    def handle_result(self, message, result, exc_info):
        serializer = kombu.serialization.registry.type_to_name[message.properties["content_type"]]
        error = serialize(exc_info[1]) if exc_info is not None else None
        try:
            content_type, encoding, body = kombu.serialization.dumps({"result": result, "error": error}, serializer)
        except Exception:  # noqa: BLE001 - as nameko: the caller learns the result could not be sent
            exc_info = sys.exc_info()
            unserializable, result = result, None
            content_type, encoding, body = kombu.serialization.dumps(
                {"result": None, "error": serialize(UnserializableValueError(unserializable))}, serializer)
        with producers[self._reply_connection].acquire(block=True) as producer:
            producer.publish(body, exchange=self._reply_exchange, routing_key=message.properties["reply_to"],
                             correlation_id=message.properties.get("correlation_id"), content_type=content_type,
                             content_encoding=encoding, delivery_mode=1, retry=True,
                             retry_policy=DEFAULT_RETRY_POLICY)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class AtMostOnceRpc(Rpc):
    """nameko's RPC entrypoint, carrying out each request at most once.

    A request the broker delivers again (its consumer died, or lost the broker, before
    acking it) may already have been carried out: a login would open a second session and
    record a second login_succeeded. Its caller has been told (or will be: 504) that the
    change may have happened, so running it again only doubles it. It is answered with
    503 service_unavailable instead, and not run.

    An answer that cannot be sent because the broker is gone is dropped (the caller
    times out: 504), not raised: nameko would take the exception for a crash of the
    service and stop it, so a broker restart used to kill every service that was
    answering a call at that moment.

    Quorum queues set `redelivered` too (tests/integration/test_quorum.py checks it).
    """

    rpc_consumer = TypedRpcConsumer()

    def check_signature(self, args, kwargs):
        """As nameko's (IncorrectSignature when the arguments do not fit the method), with the
        method's signature read once instead of inspect.getcallargs on every request."""
        try:
            _signature(self.container.service_cls, self.method_name).bind(None, *args, **kwargs)
        except TypeError as error:
            raise IncorrectSignature(str(error)) from None

    def handle_message(self, body, message):
        if message.delivery_info.get("redelivered"):
            log.warning("redelivered rpc %s not run again", message.delivery_info.get("routing_key"))
            error = ServiceUnavailable("The request was interrupted; it may or may not have been applied.",
                                       code="request_interrupted")
            self._answer(message, None, (type(error), error, None))
            return
        super().handle_message(body, message)

    def handle_result(self, message, worker_ctx, result, exc_info):
        return self._answer(message, result, exc_info)

    def _answer(self, message, result, exc_info):
        try:
            return self.rpc_consumer.handle_result(message, result, exc_info)
        except BROKER_ERRORS as error:
            log.warning("rpc answer to %s lost with the broker: %s", message.delivery_info.get("routing_key"),
                        type(error).__name__)
            try:  # done is done: no redelivery (if the ack cannot go either, the redelivery gets a 503)
                self.rpc_consumer.queue_consumer.ack_message(message)
            except BROKER_ERRORS:
                pass
            return result, exc_info


@functools.lru_cache(maxsize=None)
def _signature(service_cls, method_name: str) -> inspect.Signature:
    return inspect.signature(getattr(service_cls, method_name))


def expire_reply_queues_after(seconds: float) -> None:
    """The reply queue of each RpcProxy of this process (nameko's `rpc.reply-<service>-<uuid>`)
    is deleted by the broker `seconds` after its last consumer went away: an instance killed
    with SIGKILL leaves no queue (with the replies it never read) for longer than that.
    nameko's own default is five minutes; the name is new per start, so no declare conflicts."""
    import nameko.rpc
    nameko.rpc.RPC_REPLY_QUEUE_TTL = max(1000, int(seconds * 1000))
