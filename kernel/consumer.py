"""Event consumers: one durable queue each, idempotent, never dropping a message.

    @on_event("identity", types=["identity.user_created"])
    def grant_bootstrap_role(self, event, uow): ...

The handler runs inside a unit of work that first claims the event id in the
service's inbox, so a redelivered event (after a crash, or a duplicate publish)
changes nothing. A handler that raises a transient error has its message requeued
after a pause; any other error, and a body that cannot even be decoded, is rejected
and the broker parks it in `<queue>.dead` for an admin.
"""
from __future__ import annotations

import functools
import logging
import time

from nameko.messaging import Consumer, QueueConsumer
from sqlalchemy.exc import DBAPIError, OperationalError

from kernel import metrics
from kernel.envelope import Event
from kernel.errors import TransientError
from kernel.topology import consumer_queue

log = logging.getLogger(__name__)

TRANSIENT = (TransientError, OperationalError, ConnectionError)
REQUEUE_PAUSE = 1.0


def is_transient(error: BaseException) -> bool:
    """Worth retrying later (a dependency briefly away), as opposed to a message that will never succeed."""
    return isinstance(error, TRANSIENT) or (isinstance(error, DBAPIError) and error.connection_invalidated)


class DeadLetteringQueueConsumer(QueueConsumer):
    """nameko's queue consumer, able to reject a message into its dead-letter queue."""

    def reject_message(self, message):
        if message.channel.connection:  # else the broker has reclaimed it already
            try:
                message.reject(requeue=False)
            except ConnectionError:
                pass

    def on_decode_error(self, message, exc):
        # kombu's default logs and ACKS an undecodable body, i.e. drops it.
        log.error("undecodable message %s parked: %s", message.properties.get("message_id"), exc)
        self.reject_message(message)
        metrics.count_consumed(self.container.service_name, message, metrics.DEAD_LETTERED)


class EventConsumer(Consumer):
    queue_consumer = DeadLetteringQueueConsumer()

    def __init__(self, sources, patterns=("#",), **kwargs):
        self.sources = tuple(sources)
        self.patterns = tuple(patterns)
        super().__init__(queue=None, requeue_on_error=False, **kwargs)

    def setup(self):
        self.queue = consumer_queue(self.container.service_name, self.method_name, self.sources, self.patterns,
                                    self.container.config.get("GATEHOUSE"))
        super().setup()

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            self._count(message, metrics.HANDLED)
            return
        error = exc_info[1]
        if is_transient(error):
            log.warning("%s: transient failure, requeueing: %s", self.queue.name, error)
            time.sleep(REQUEUE_PAUSE)
            self.queue_consumer.requeue_message(message)
            self._count(message, metrics.REQUEUED)
            return
        log.error("%s: message %s parked in %s.dead: %s: %s", self.queue.name,
                  message.properties.get("message_id"), self.queue.name, type(error).__name__, error)
        self.queue_consumer.reject_message(message)
        self._count(message, metrics.DEAD_LETTERED)

    def _count(self, message, outcome: str) -> None:
        metrics.count_consumed(self.container.service_name, message, outcome)


def on_event(*sources: str, types=("#",), dedupe: bool = True):
    """Declare a handler of the domain events of `sources` whose type matches `types`.

    With dedupe (the default) the handler is called as handler(self, event, uow) and
    must only touch the database; the unit of work commits after it returns. Without,
    handler(self, event) must be idempotent by itself.
    """

    def decorate(fn):
        @functools.wraps(fn)
        def handler(self, body):
            event = Event.from_dict(body)
            if not dedupe:
                return fn(self, event)
            with self.db.unit_of_work() as uow:
                if not uow.claim(event.id, fn.__name__):
                    log.info("%s: event %s already handled", fn.__name__, event.id)
                    return None
                result = fn(self, event, uow)
                uow.commit()
                return result

        return EventConsumer.decorator(sources, tuple(types))(handler)

    return decorate
