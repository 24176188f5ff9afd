"""Audit's ingest: every event of every service, stored in batches, never dropped.

nameko's event entrypoints hand messages to workers one at a time, so audit stored one
event per transaction (~850/s). This dependency provider runs its own kombu consumer on
its own connection instead: it gathers up to GATEHOUSE_AUDIT_BATCH_SIZE messages or
GATEHOUSE_AUDIT_BATCH_WAIT seconds, appends them all in one transaction, and acks them
with one multiple-ack only after the commit. Failure rules:

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
import socket
import time
from dataclasses import asdict, dataclass

import eventlet
from kombu import Connection, Consumer
from nameko.extensions import DependencyProvider
from sqlalchemy.exc import InterfaceError, InternalError, ProgrammingError

from kernel import SERVICES, failpoints, metrics
from kernel.consumer import REQUEUE_PAUSE, is_transient
from kernel.envelope import Event, utc_now
from kernel.service import Database
from kernel.topology import consumer_queue, dead_letter_queue
from services.audit import storage

log = logging.getLogger(__name__)

QUEUE_METHOD = "record"
CONNECTION_NAME = "audit ingest"  # how the broker's connection list shows it
HEARTBEAT = 30  # seconds; the broker drops a consumer that misses two
MAX_RECONNECT_PAUSE = 30.0
IDLE_WAIT = 1.0  # seconds between checks for a stop request or a heartbeat when no event comes


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
        self._pending: list = []
        self._connection: Connection | None = None
        self._stopping = False
        self._thread = None
        self._pause = REQUEUE_PAUSE

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
                log.warning("audit ingest: %s; unacked events return to %s; reconnecting in %.0f s",
                            self.stats.last_error, self.queue.name, self._pause)
                self._close()
                self._sleep(self._pause)
                self._pause = min(self._pause * 2, MAX_RECONNECT_PAUSE)  # a batch stored resets it
        self._close()

    def _consume(self):
        self._pending = []
        self._connection = connection = Connection(
            self.amqp_uri, heartbeat=HEARTBEAT, connect_timeout=10,
            transport_options={"client_properties": {"connection_name": CONNECTION_NAME}})
        connection.ensure_connection(max_retries=1)
        channel = connection.channel()
        # Four batches in flight: the broker keeps streaming while a batch is written.
        channel.basic_qos(0, self.batch_size * 4, False)
        dead_letter_queue(self.queue.name, self.config)(channel).declare()
        self.queue(channel).declare()
        Consumer(channel, [self.queue], on_message=self._pending.append, auto_declare=False).consume()
        self.stats.connected = True
        log.info("audit ingest: consuming %s (batches of up to %d, %.3f s)", self.queue.name, self.batch_size,
                 self.batch_wait)
        next_heartbeat = time.monotonic()
        first_at = None
        while not self._stopping:
            now = time.monotonic()
            if self._pending and first_at is None:
                first_at = now
            if first_at is not None and (len(self._pending) >= self.batch_size or now - first_at >= self.batch_wait):
                self._flush(channel)
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
        self._flush(channel)  # stopping: keep what is in hand

    def _flush(self, channel):
        batch = list(self._pending)
        self._pending.clear()  # in place: the consumer's callback appends to this list
        if not batch:
            return
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
        self._pause = REQUEUE_PAUSE
        for (message, _), error in refused:
            self._park(message, "could not be stored", error)
        refused_messages = {id(message) for (message, _row), _error in refused}
        kept = [message for message, _row in items if id(message) not in refused_messages]
        failpoints.hit("audit.after_commit", "ingest")
        if kept:  # every earlier delivery is stored or already rejected: one ack settles them all
            channel.basic_ack(kept[-1].delivery_tag, multiple=True)
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
        message.reject(requeue=False)
        self.stats.parked += 1
        metrics.count_consumed(self.container.service_name, message, metrics.DEAD_LETTERED)

    def _sleep(self, seconds: float) -> None:
        """A pause that a stop request cuts short."""
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            eventlet.sleep(min(0.2, deadline - time.monotonic()))

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.stats.connected = False
        if connection is not None:
            try:
                connection.collect()  # drops the socket without waiting on a broker that may be gone
            except Exception:  # noqa: BLE001
                pass
