"""Event consumers' AMQP side: nameko's Consumer entrypoint on a durable queue, with broker-side dead letters.

Each message is acked once its handler returned; a transient failure requeues it after a
pause (the broker delivers it again); anything else, and a body that cannot even be
decoded, is rejected without requeue, and the broker moves it into `<queue>.dead` (the
queue's dead-letter exchange, kernel.topology). The inbox around the handler (each event
id once) is kernel.consumer's `on_event`.
"""
from __future__ import annotations

import logging
import time

from nameko.messaging import Consumer, QueueConsumer
from sqlalchemy.exc import DBAPIError, OperationalError

from kernel import metrics
from kernel.errors import TransientError
from kernel.topology import consumer_queue

log = logging.getLogger("kernel.consumer")  # the name its lines always had

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
