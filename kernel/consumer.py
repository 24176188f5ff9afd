"""Event consumers: one durable queue each, idempotent, never dropping a message.

    @on_event("identity", types=["identity.user_created"])
    def grant_bootstrap_role(self, event, uow): ...

The handler runs inside a unit of work that first claims the event id in the
service's inbox, so a redelivered event (after a crash, or a duplicate publish)
changes nothing. A handler that raises a transient error has its message requeued
after a pause; any other error parks the message in `<queue>.dead` for an admin.
"""
from __future__ import annotations

import functools
import logging
import time

from kombu import Connection, Producer
from nameko.messaging import Consumer
from sqlalchemy.exc import DBAPIError, OperationalError

from kernel.envelope import Event
from kernel.errors import TransientError
from kernel.topology import DEAD_LETTER_EXCHANGE, consumer_queue, dead_letter_queue

log = logging.getLogger(__name__)

TRANSIENT = (TransientError, OperationalError, ConnectionError)
REQUEUE_PAUSE = 1.0


class EventConsumer(Consumer):
    def __init__(self, sources, patterns=("#",), **kwargs):
        self.sources = tuple(sources)
        self.patterns = tuple(patterns)
        super().__init__(queue=None, requeue_on_error=False, **kwargs)

    def setup(self):
        self.queue = consumer_queue(self.container.service_name, self.method_name, self.sources, self.patterns)
        super().setup()

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        error = exc_info[1]
        if isinstance(error, TRANSIENT) or (isinstance(error, DBAPIError) and error.connection_invalidated):
            log.warning("%s: transient failure, requeueing: %s", self.queue.name, error)
            time.sleep(REQUEUE_PAUSE)
            self.queue_consumer.requeue_message(message)
            return
        try:
            self._dead_letter(message, error)
        except Exception:
            log.exception("%s: could not dead-letter a message; requeueing it", self.queue.name)
            time.sleep(REQUEUE_PAUSE)
            self.queue_consumer.requeue_message(message)
            return
        log.error("%s: message parked in %s.dead: %r", self.queue.name, self.queue.name, error)
        self.queue_consumer.ack_message(message)

    def _dead_letter(self, message, error: BaseException) -> None:
        amqp_uri = self.container.config["AMQP_URI"]
        with Connection(amqp_uri, connect_timeout=5, transport_options={"confirm_publish": True}) as conn:
            channel = conn.channel()
            dead_letter_queue(self.queue.name)(channel).declare()
            Producer(channel).publish(
                message.body, exchange=DEAD_LETTER_EXCHANGE, routing_key=self.queue.name,
                content_type=message.content_type, content_encoding=message.content_encoding,
                delivery_mode=2, retry=False,
                headers={"x-gatehouse-error": f"{type(error).__name__}: {error}"[:1000],
                         "x-gatehouse-queue": self.queue.name},
            )


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
