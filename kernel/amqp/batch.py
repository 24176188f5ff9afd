"""A batching consumer: deliveries gathered into batches, settled with one multiple-ack each.

nameko's event entrypoints hand messages to workers one at a time (one transaction per
message). This consumer runs on its own connection and yields a batch when it holds
`batch_size` messages or its first one has waited `batch_wait` seconds; the caller stores
the batch, rejects what it cannot take (`reject`: into the queue's dead letters) and then
settles the rest with one `ack_through(last)`. Nothing is acked otherwise: when the
connection goes, every unacked message goes back to its queue.

Runs under eventlet (a nameko dependency provider's managed thread): after each batch the
loop yields to the hub (a busy socket never blocks, so RPCs and the outbox relay would
not get their turn).
"""
from __future__ import annotations

import socket
import time
from typing import Callable, Iterator

import eventlet
from kombu import Consumer, Queue

from kernel.amqp.connection import BATCH_HEARTBEAT, connect, drop, open_connection

IDLE_WAIT = 1.0  # seconds between checks for a stop request or a heartbeat when no message comes
PREFETCH_BATCHES = 4  # batches in flight: the broker keeps streaming while one is written


class BatchConsumer:
    """One connection consuming `queue` (declared first, with its dead-letter queue)."""

    def __init__(self, amqp_uri: str, queue: Queue, dead_letters: Queue, batch_size: int, batch_wait: float,
                 name: str):
        self.amqp_uri, self.queue, self.dead_letters = amqp_uri, queue, dead_letters
        self.batch_size, self.batch_wait, self.name = batch_size, batch_wait, name
        self._pending: list = []
        self._connection = None
        self._channel = None

    def open(self) -> None:
        """Connect (`connect`), declare, consume: raises a broker error when it cannot."""
        self._pending = []
        self._connection = connection = open_connection(self.amqp_uri, heartbeat=BATCH_HEARTBEAT, name=self.name)
        connect(connection)
        self._channel = channel = connection.channel()
        channel.basic_qos(0, self.batch_size * PREFETCH_BATCHES, False)
        self.dead_letters(channel).declare()
        self.queue(channel).declare()
        Consumer(channel, [self.queue], on_message=self._pending.append, auto_declare=False).consume()

    def batches(self, stopping: Callable[[], bool]) -> Iterator[list]:
        """Batches of messages (in delivery order) until `stopping()`; then what is in hand."""
        connection = self._connection
        next_heartbeat = time.monotonic()
        first_at = None
        while not stopping():
            now = time.monotonic()
            if self._pending and first_at is None:
                first_at = now
            if first_at is not None and (len(self._pending) >= self.batch_size or now - first_at >= self.batch_wait):
                yield self._take()
                first_at = None
                eventlet.sleep(0)  # a busy socket never blocks: let RPCs and the outbox relay run
                continue
            try:
                connection.drain_events(timeout=IDLE_WAIT if first_at is None else
                                        max(0.0, first_at + self.batch_wait - now))
            except socket.timeout:
                pass
            if now >= next_heartbeat:
                connection.heartbeat_check()
                next_heartbeat = now + 1.0
        if self._pending:  # stopping: the caller keeps what is in hand
            yield self._take()

    def _take(self) -> list:
        batch = list(self._pending)
        self._pending.clear()  # in place: the consumer's callback appends to this list
        return batch

    def ack_through(self, message) -> None:
        """Settle `message` and every earlier unsettled delivery (stored, or rejected already)."""
        self._channel.basic_ack(message.delivery_tag, multiple=True)

    @staticmethod
    def reject(message) -> None:
        """Into the queue's dead letters (the broker moves it): before any ack_through covering it."""
        message.reject(requeue=False)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        drop(connection)  # without waiting on a broker that may be gone
