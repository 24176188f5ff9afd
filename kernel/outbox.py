"""The outbox relay: publishes committed events to RabbitMQ, then marks them sent.

The publishing itself (confirms, mandatory, timeouts) is kernel.amqp.publisher's.

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

from kernel import failpoints
from kernel.amqp.connection import OUTBOX_RETRY, Backoff
from kernel.amqp.publisher import AmqpPublisher
from kernel.db import ServiceDatabase
from kernel.envelope import utc_now
from kernel.metrics import EVENTS_PUBLISHED

__all__ = ["AmqpPublisher", "OutboxRelay"]

log = logging.getLogger(__name__)

PUBLISHED_ROWS_KEPT = timedelta(days=1)


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
        backoff = Backoff(*OUTBOX_RETRY)  # a pass that works resets it
        while not self._stopping.is_set():
            self.db.committed.clear()  # before reading, so a commit during the pass is not missed
            try:
                sent = self.relay_once()
                backoff.reset()
                if time.monotonic() - self._last_cleanup > 3600:
                    self._last_cleanup = time.monotonic()
                    self.cleanup()
            except Exception:
                pause = backoff.next()
                log.warning("outbox relay of %s failed; retrying in %.1fs", self.db.service, pause, exc_info=True)
                self.publisher.close()
                self._stopping.wait(pause)
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
