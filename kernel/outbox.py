"""The outbox relay: publishes committed events to RabbitMQ, then marks them sent.

At-least-once: a crash after the broker confirmed but before the row was marked
publishes that event again on restart; consumers absorb it by event id. On
PostgreSQL, instances of one service skip each other's rows (FOR UPDATE SKIP LOCKED).
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from kombu import Connection, Producer

from kernel import failpoints
from kernel.db import ServiceDatabase
from kernel.envelope import utc_now
from kernel.metrics import EVENTS_PUBLISHED
from kernel.topology import events_exchange

log = logging.getLogger(__name__)

PUBLISHED_ROWS_KEPT = timedelta(days=1)
BROKER_TIMEOUT = 15  # seconds any broker read, write or confirm may take before we reconnect


class AmqpPublisher:
    """Publishes with publisher confirms: `publish` returns once the broker has routed the message.

    mandatory: an event that no queue would receive is refused (the broker lost its
    queue definitions, say) instead of being confirmed into the void and marked sent.
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
            self._connection = Connection(self.amqp_uri, connect_timeout=5, transport_options={
                "confirm_publish": True, "read_timeout": BROKER_TIMEOUT, "write_timeout": BROKER_TIMEOUT})
            self._producer = Producer(self._connection.channel())
        return self._producer

    def close(self) -> None:
        if self._connection is not None:
            self._connection.collect()  # drops the socket without waiting on a broker that may be gone
        self._connection = self._producer = None
        self._declared.clear()


class OutboxRelay:
    def __init__(self, db: ServiceDatabase, publisher, poll_interval: float = 1.0, batch_size: int = 200):
        self.db = db
        self.publisher = publisher
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._stopping = threading.Event()
        self._running = threading.Event()
        self._done = threading.Event()
        self._last_cleanup = 0.0

    def relay_once(self) -> int:
        """Publish one batch of pending events in order; returns how many were sent."""
        outbox = self.db.outbox
        pending = (sa.select(outbox.c.seq, outbox.c.event_id, outbox.c.exchange, outbox.c.routing_key, outbox.c.body)
                   .where(outbox.c.published_at.is_(None)).order_by(outbox.c.seq)
                   .limit(self.batch_size).with_for_update(skip_locked=True))
        sent, published, failure = [], [], None
        with self.db.engine.begin() as conn:
            for row in conn.execute(pending).all():
                try:
                    self.publisher.publish(row.exchange, row.routing_key, row.body, row.event_id)
                except Exception as error:
                    failure = error
                    break
                failpoints.hit("outbox.after_publish", row.routing_key)
                sent.append(row.seq)
                published.append(row.routing_key)
            # What the broker confirmed is marked (and committed) even when a later publish failed.
            if sent:
                conn.execute(sa.update(outbox).where(outbox.c.seq.in_(sent)).values(published_at=utc_now()))
        for routing_key in published:
            EVENTS_PUBLISHED.labels(service=self.db.service, type=routing_key).inc()
        if failure:
            raise failure
        return len(sent)

    def cleanup(self) -> int:
        outbox = self.db.outbox
        with self.db.engine.begin() as conn:
            return conn.execute(sa.delete(outbox).where(outbox.c.published_at < utc_now() - PUBLISHED_ROWS_KEPT)).rowcount

    def run(self) -> None:
        """Relay until stopped: at once after a local commit, else every poll interval."""
        self._running.set()
        backoff = 0.5
        while not self._stopping.is_set():
            self.db.committed.clear()  # before reading, so a commit during the pass is not missed
            try:
                sent = self.relay_once()
                backoff = 0.5
                if time.monotonic() - self._last_cleanup > 3600:
                    self._last_cleanup = time.monotonic()
                    self.cleanup()
            except Exception:
                log.warning("outbox relay of %s failed; retrying in %.1fs", self.db.service, backoff, exc_info=True)
                self.publisher.close()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30)
                continue
            if sent < self.batch_size:
                self.db.committed.wait(self.poll_interval)
        self._flush()
        self._done.set()

    def stop(self, timeout: float = 20) -> None:
        """Send what was committed before the stop, then return (the running loop does it)."""
        self._stopping.set()
        self.db.committed.set()
        if not self._running.is_set():
            self._flush()
        elif not self._done.wait(timeout):
            log.warning("outbox relay of %s did not finish in %ss; events stay queued for the next start",
                        self.db.service, timeout)

    def _flush(self) -> None:
        try:
            while self.relay_once() == self.batch_size:
                pass
        except Exception:
            log.warning("final outbox flush of %s failed; events stay queued for the next start", self.db.service)
        self.publisher.close()
