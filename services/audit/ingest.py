"""Audit's ingest: every event of every service, stored in batches, never dropped.

nameko's event entrypoints hand messages to workers one at a time, so audit stored one
event per transaction (~850/s). This dependency provider runs kernel.amqp's batching
consumer on its own connection instead: it gathers up to GATEHOUSE_AUDIT_BATCH_SIZE
messages or GATEHOUSE_AUDIT_BATCH_WAIT seconds, appends them all in one transaction, and
acks them with one multiple-ack only after the commit. Failure rules:

- the broker goes away: everything unacked goes back to the queue; we reconnect, backing off;
- the database is briefly unavailable (locked, connection lost): the same, after a pause;
- a message that is not a valid event, or that cannot be stored, is rejected into
  `<queue>.dead` (the batch is halved until the refused rows are found) while the rest of
  its batch is stored.

Batches stay bounded (SQLite blocks the eventlet hub while it writes: tens of ms per
batch), and the loop yields after each, so RPCs and the outbox relay keep their turn.

A crash between commit and ack redelivers stored events: storage.append skips event ids
it already holds, so each event is stored exactly once. The queue is `audit.record`
(what the nameko handler it replaces consumed), declared by `kernel.topology.declare`
through `consumer_queues` before anything is published.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy.exc import InterfaceError, InternalError, ProgrammingError

from kernel import SERVICES, failpoints, metrics
from kernel.amqp.batch import BatchConsumer
from kernel.amqp.connection import BATCH_RETRY, Backoff
from kernel.amqp.consumer import is_transient
from kernel.envelope import Event, utc_now
from kernel.service import Database
from kernel.topology import consumer_queue, dead_letter_queue
from services.audit import storage

log = logging.getLogger(__name__)

QUEUE_METHOD = "record"
CONNECTION_NAME = "audit ingest"  # how the broker's connection list shows it


# The store itself is broken (schema not migrated, driver confused), not one message:
# parking every message into the dead-letter queue would only make work for an admin.
STORE_BROKEN = (ProgrammingError, InterfaceError, InternalError)


def retry_later(error: BaseException) -> bool:
    """Nothing is acked and the batch comes back after a pause (versus: the message is poison)."""
    return is_transient(error) or isinstance(error, STORE_BROKEN)


def decode(body: bytes | str, recorded_at) -> dict:
    """The stored columns of one message body; raises if it is not a valid event (poison)."""
    return storage.record_from_event(Event.from_dict(json.loads(body)), recorded_at)


def store_isolating(items: list, append) -> list[tuple[object, Exception]]:
    """Append `items` in one transaction (`append(items)`); returns the items refused, with why.

    When a batch fails for good (an error worth retrying later propagates instead),
    the halves are stored in order, recursively, so one bad row costs about log2(n) extra
    transactions and every other row is stored, in delivery order.
    """
    try:
        append(items)
        return []
    except Exception as error:
        if retry_later(error):
            raise
        if len(items) == 1:
            return [(items[0], error)]
    middle = len(items) // 2
    return store_isolating(items[:middle], append) + store_isolating(items[middle:], append)


@dataclass
class IngestStats:
    """What the ingest did since the process started (shown by audit's health)."""

    queue: str
    connected: bool = False
    acked: int = 0  # events stored (or found stored already) and acknowledged
    batches: int = 0
    parked: int = 0
    reconnects: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class BatchIngest(DependencyProvider):
    """Consumes every service's events (`#` on each `<service>.events`) and appends them in batches."""

    def __init__(self, sources=SERVICES):
        self.sources = tuple(sources)

    def consumer_queues(self, service_name: str, config=None) -> list:
        return [consumer_queue(service_name, QUEUE_METHOD, self.sources, ("#",), config)]

    def setup(self):
        self.config = config = self.container.config["GATEHOUSE"]
        self.amqp_uri = config.amqp_uri
        self.batch_size = config.integer("GATEHOUSE_AUDIT_BATCH_SIZE")
        self.batch_wait = config.number("GATEHOUSE_AUDIT_BATCH_WAIT")
        [self.queue] = self.consumer_queues(self.container.service_name, config)
        self.stats = IngestStats(queue=self.queue.name)
        self.db = None
        self._consumer: BatchConsumer | None = None
        self._stopping = False
        self._thread = None
        self._backoff = Backoff(*BATCH_RETRY)  # a batch stored resets it

    def start(self):
        self.db = next(dep.db for dep in self.container.dependencies if isinstance(dep, Database))
        self._thread = self.container.spawn_managed_thread(self._run, identifier="audit ingest")

    def stop(self):
        """Store and ack what is in hand, then close (the broker requeues what was prefetched)."""
        self._stopping = True
        if self._thread is not None:
            self._thread.wait()

    def kill(self):
        self._stopping = True
        self._close()

    def get_dependency(self, worker_ctx):
        return self.stats

    # --- the consuming loop ------------------------------------------------------

    def _run(self):
        while not self._stopping:
            try:
                self._consume()
            except Exception as error:  # noqa: BLE001 - whatever it was, nothing was acked: reconnect
                if self._stopping:
                    break
                self.stats.connected, self.stats.last_error = False, f"{type(error).__name__}: {error}"[:300]
                self.stats.reconnects += 1
                pause = self._backoff.next()
                log.warning("audit ingest: %s; unacked events return to %s; reconnecting in %.0f s",
                            self.stats.last_error, self.queue.name, pause)
                self._close()
                self._sleep(pause)
        self._close()

    def _consume(self):
        self._consumer = consumer = BatchConsumer(
            self.amqp_uri, self.queue, dead_letter_queue(self.queue.name, self.config), self.batch_size,
            self.batch_wait, CONNECTION_NAME)
        consumer.open()
        self.stats.connected = True
        log.info("audit ingest: consuming %s (batches of up to %d, %.3f s)", self.queue.name, self.batch_size,
                 self.batch_wait)
        for batch in consumer.batches(lambda: self._stopping):  # stopping: the last one is what is in hand
            self._flush(consumer, batch)

    def _flush(self, consumer: BatchConsumer, batch: list):
        recorded_at = utc_now()
        items = []
        for message in batch:
            try:
                items.append((message, decode(message.body, recorded_at)))
            except Exception as error:  # noqa: BLE001 - any way of not being an event
                # Rejected before the multiple-ack below, which must not cover it.
                self._park(message, "not a valid event", error)
        # An error worth retrying propagates: the connection closes, the broker requeues, _run pauses.
        refused = store_isolating(items, self._append)
        self._backoff.reset()
        for (message, _), error in refused:
            self._park(message, "could not be stored", error)
        refused_messages = {id(message) for (message, _row), _error in refused}
        kept = [message for message, _row in items if id(message) not in refused_messages]
        failpoints.hit("audit.after_commit", "ingest")
        if kept:  # every earlier delivery is stored or already rejected: one ack settles them all
            consumer.ack_through(kept[-1])
        self.stats.batches += 1
        self.stats.acked += len(kept)
        for message in kept:
            metrics.count_consumed(self.container.service_name, message, metrics.HANDLED)

    def _append(self, items) -> None:
        with self.db.engine.connect() as conn:
            storage.begin_write(conn)
            storage.append(conn, [row for _, row in items])
            conn.commit()

    def _park(self, message, why: str, error: Exception) -> None:
        log.error("audit ingest: message %s parked in %s.dead, %s: %s: %s",
                  message.properties.get("message_id"), self.queue.name, why, type(error).__name__,
                  str(error)[:300])
        BatchConsumer.reject(message)
        self.stats.parked += 1
        metrics.count_consumed(self.container.service_name, message, metrics.DEAD_LETTERED)

    def _sleep(self, seconds: float) -> None:
        """A pause that a stop request cuts short."""
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            eventlet.sleep(min(0.2, deadline - time.monotonic()))

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        self.stats.connected = False
        if consumer is not None:
            consumer.close()
