"""What every nameko service of Gatehouse has: a database with its outbox relay, and health;
and `Periodic`, the base of background loops (followers of a service's tables)."""
from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading

import kombu.serialization
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.pools import producers
from nameko.amqp.publish import DEFAULT_RETRY_POLICY, DEFAULT_TRANSPORT_OPTIONS
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, LOGIN_METHOD_CONFIG_KEY
from nameko.exceptions import IncorrectSignature, MethodNotFound, UnserializableValueError, serialize
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc, RpcConsumer, get_rpc_exchange

from kernel.calllog import CallLog
from kernel.db import ServiceDatabase
from kernel.errors import GatehouseError, ServiceUnavailable
from kernel.metrics import ServiceMetrics
from kernel.outbox import AmqpPublisher, OutboxRelay
from kernel.topology import rpc_queue

log = logging.getLogger(__name__)

BROKER_ERRORS = (OperationalError, AmqpConnectionError, OSError)  # the broker went away


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
        self._reply_connection = Connection(
            config[AMQP_URI_CONFIG_KEY], ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
            transport_options={**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": False})

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


def rpc(fn=None, **options):
    """nameko's @rpc, at most once per request (AtMostOnceRpc), with domain errors expected
    (answered, not logged as crashes)."""
    options.setdefault("expected_exceptions", (GatehouseError,))
    decorator = AtMostOnceRpc.decorator(**options)
    return decorator(fn) if fn else decorator


class Database(DependencyProvider):
    """Gives workers the service's ServiceDatabase and runs its outbox relay."""

    def __init__(self, metadata):
        self.metadata = metadata
        self.db: ServiceDatabase | None = None
        self.relay: OutboxRelay | None = None

    def setup(self):
        config = self.container.config["GATEHOUSE"]
        name = self.container.service_name
        self.db = ServiceDatabase(name, config.db_url(name), self.metadata,
                                  pool_size=config.integer("GATEHOUSE_DB_POOL_SIZE"))
        self.relay = OutboxRelay(self.db, AmqpPublisher(config.amqp_uri),
                                 poll_interval=config.number("GATEHOUSE_OUTBOX_POLL_INTERVAL"))

    def start(self):
        self.container.spawn_managed_thread(self.relay.run)

    def stop(self):
        self.relay.stop()
        self.db.dispose()

    def kill(self):
        self.db.dispose()

    def get_dependency(self, worker_ctx):
        return self.db


class ServiceBase:
    """Subclasses set `name` and `db = Database(metadata)`; `metrics` times RPCs and serves
    the service's metrics (a subclass may add its own: `metrics = ServiceMetrics(extra)`)."""

    name: str
    db: ServiceDatabase
    metrics = ServiceMetrics()
    call_log = CallLog()  # log context (request id, user, tenant) and one line per call

    @rpc
    def health(self):
        return {"service": self.name, "status": "ok", "outbox_backlog": self.db.outbox_backlog()}


class Periodic(DependencyProvider):
    """A managed thread of a service calling `run_once(db)` every `interval` seconds, or
    sooner after `wake()`; workers get the provider itself. Subclasses set `interval` and
    write `run_once`; an error is logged and the loop goes on."""

    interval = 1.0

    def setup(self):
        self.wakeup = threading.Event()  # green under eventlet
        self.stopping = threading.Event()
        self.db: ServiceDatabase | None = None

    def start(self):
        # The service's Database provider opened the database in its setup (all setups run before any start).
        self.db = next(dep.db for dep in self.container.dependencies if isinstance(dep, Database))
        self.container.spawn_managed_thread(self.run)

    def stop(self):
        self.stopping.set()
        self.wakeup.set()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self

    def wake(self) -> None:
        self.wakeup.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wakeup.clear()  # before the pass, so a wake() during it is not missed
            try:
                self.run_once(self.db)
            except Exception:
                log.warning("%s pass failed; retrying", type(self).__name__, exc_info=True)
            self.wakeup.wait(self.interval)

    def run_once(self, db: ServiceDatabase) -> None:
        raise NotImplementedError
