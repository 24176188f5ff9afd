"""The outbox relay's publisher: confirmed, mandatory, persistent publishes of events."""
from __future__ import annotations

from kombu import Producer

from kernel.amqp.connection import BROKER_TIMEOUT, drop, open_connection
from kernel.topology import events_exchange


class AmqpPublisher:
    """Publishes with publisher confirms: `publish` returns once the broker has routed the message.

    mandatory: an event that no queue would receive is refused (the broker lost its
    queue definitions, say) instead of being confirmed into the void and marked sent.
    No retry inside: a failed publish raises, and the relay closes the publisher and tries
    again after its backoff (the event stays in the outbox meanwhile). No heartbeat: every
    read, write and confirm times out after BROKER_TIMEOUT seconds instead.
    """

    def __init__(self, amqp_uri: str):
        self.amqp_uri = amqp_uri
        self._connection = None
        self._producer = None
        self._declared: set[str] = set()

    def publish(self, exchange: str, routing_key: str, body: str, message_id: str) -> None:
        producer = self._ensure()
        if exchange not in self._declared:
            service = exchange.rsplit(".events", 1)[0]
            events_exchange(service)(producer.channel).declare()
            self._declared.add(exchange)
        producer.publish(
            body, exchange=exchange, routing_key=routing_key, content_type="application/json",
            content_encoding="utf-8", delivery_mode=2, message_id=message_id, retry=False,
            mandatory=True, confirm_timeout=BROKER_TIMEOUT,
        )

    def _ensure(self) -> Producer:
        if self._producer is None:
            self._connection = open_connection(self.amqp_uri, confirm_publish=True, io_timeout=BROKER_TIMEOUT)
            self._producer = Producer(self._connection.channel())
        return self._producer

    def close(self) -> None:
        drop(self._connection)  # without waiting on a broker that may be gone
        self._connection = self._producer = None
        self._declared.clear()
